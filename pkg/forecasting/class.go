package forecasting

// Class is a Syntetos-Boylan demand class.
type Class string

// Demand classes; ClassNew until the series has enough history.
const (
	ClassNew          Class = "new"
	ClassSmooth       Class = "smooth"
	ClassErratic      Class = "erratic"
	ClassIntermittent Class = "intermittent"
	ClassLumpy        Class = "lumpy"
)

// Syntetos-Boylan-Croston cut-offs (2005).
const (
	adiCutoff = 1.32
	cv2Cutoff = 0.49
)

// ClassStats estimates the average demand interval (ADI) and the squared
// coefficient of variation of non-zero demand sizes (CV²) online, with
// exponential weights so the class follows the series as it changes.
type ClassStats struct {
	Occurrence float64 // share of days with demand
	SizeMean   float64 // mean non-zero size
	SizeSq     float64 // mean squared non-zero size
	N          int32
	NSize      int32
}

func (c *ClassStats) update(y float64) {
	c.N++
	hit := 0.0
	if y > 0 {
		hit = 1
		c.NSize++
		ewAdd(&c.SizeMean, c.NSize, classRate, y)
		ewAdd(&c.SizeSq, c.NSize, classRate, y*y)
	}
	ewAdd(&c.Occurrence, c.N, classRate, hit)
}

// ADI is the average number of days between two days with demand.
func (c *ClassStats) ADI() float64 {
	if c.Occurrence <= 0 {
		return 0
	}
	return 1 / c.Occurrence
}

// CV2 is the squared coefficient of variation of the non-zero sizes.
func (c *ClassStats) CV2() float64 {
	if c.SizeMean <= 0 {
		return 0
	}
	return max(c.SizeSq-c.SizeMean*c.SizeMean, 0) / (c.SizeMean * c.SizeMean)
}

// Class returns the demand class.
func (c *ClassStats) Class() Class {
	if c.N < minClassDays || c.NSize < minClassSales {
		return ClassNew
	}
	intermittent, variable := c.ADI() >= adiCutoff, c.CV2() >= cv2Cutoff
	switch {
	case intermittent && variable:
		return ClassLumpy
	case intermittent:
		return ClassIntermittent
	case variable:
		return ClassErratic
	default:
		return ClassSmooth
	}
}
