package simulate

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
)

// PlotColors are the curve colours of Plot, in the order of Specs: stockcast
// blue, classic red, seasonal-naive green, odoo-minmax orange.
var PlotColors = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff},
	{0xd6, 0x27, 0x28, 0xff},
	{0x2c, 0xa0, 0x2c, 0xff},
	{0xff, 0x7f, 0x0e, 0xff},
}

// Plot draws each policy's curve of achieved fill rate (x) against average
// inventory value (y) as a PNG: x from the lowest fill rate (rounded down to
// 5 points) to 100%, with a grey line every 5 points and a darker one at
// 95%; y from 0 to the largest value, with a grey line every tenth of it.
// Points are the swept targets. The picture has no text: the document that
// shows it gives the scales and colours.
func Plot(w io.Writer, points []Point, specs []Spec) error {
	const width, height, margin = 900, 600, 30
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	xMin, yMax := 1.0, 0.0
	for _, p := range points {
		if f := p.Total.FillRate(); !math.IsNaN(f) {
			xMin = min(xMin, f)
		}
		yMax = max(yMax, p.Total.AvgOnHandValue())
	}
	// A baseline swept far beyond stockcast's range (min/max at 120
	// safety days) would flatten every other curve: the y scale stops at
	// twice stockcast's largest value, points above it sit on the top edge.
	var own float64
	for _, p := range points {
		if p.Policy == "stockcast" {
			own = max(own, p.Total.AvgOnHandValue())
		}
	}
	if own > 0 {
		yMax = min(yMax, 2*own)
	}
	xMin = math.Floor(xMin*20) / 20
	if xMin >= 1 || yMax <= 0 {
		return fmt.Errorf("plot: nothing to draw")
	}
	x := func(f float64) int { return margin + int((f-xMin)/(1-xMin)*float64(width-2*margin)) }
	y := func(v float64) int { return height - margin - int(min(v, yMax)/yMax*float64(height-2*margin)) }
	grey, dark := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}, color.RGBA{0x66, 0x66, 0x66, 0xff}
	for f := xMin; f <= 1+1e-9; f += 0.05 {
		c := grey
		if math.Abs(f-0.95) < 1e-9 {
			c = dark
		}
		line(img, x(f), y(0), x(f), y(yMax), c)
	}
	for i := 0; i <= 10; i++ {
		line(img, x(xMin), y(yMax*float64(i)/10), x(1), y(yMax*float64(i)/10), grey)
	}
	line(img, x(xMin), y(0), x(1), y(0), dark)
	line(img, x(xMin), y(0), x(xMin), y(yMax), dark)
	for i, sp := range specs {
		c := PlotColors[i%len(PlotColors)]
		curve := Curve(points, sp.Name)
		for j, p := range curve {
			px, py := x(p.Total.FillRate()), y(p.Total.AvgOnHandValue())
			for dx := -3; dx <= 3; dx++ {
				for dy := -3; dy <= 3; dy++ {
					img.Set(px+dx, py+dy, c)
				}
			}
			if j > 0 {
				q := curve[j-1].Total
				line(img, x(q.FillRate()), y(q.AvgOnHandValue()), px, py, c)
			}
		}
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// line draws a two-pixel-wide segment.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	steps := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= steps; i++ {
		px := x0 + (x1-x0)*i/steps
		py := y0 + (y1-y0)*i/steps
		img.Set(px, py, c)
		img.Set(px+1, py, c)
		img.Set(px, py+1, c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
