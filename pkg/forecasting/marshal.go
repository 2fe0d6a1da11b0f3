package forecasting

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// stateFormat prefixes serialised states; bump it when State's layout changes.
const stateFormat byte = 2

// MarshalBinary encodes the state (fixed size, little endian).
func (s *State) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(1 + binary.Size(s))
	buf.WriteByte(stateFormat)
	if err := binary.Write(&buf, binary.LittleEndian, s); err != nil {
		return nil, fmt.Errorf("encode forecasting state: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes a state written by MarshalBinary.
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) == 0 || data[0] != stateFormat {
		return fmt.Errorf("decode forecasting state: unknown format")
	}
	if want := 1 + binary.Size(s); len(data) != want {
		return fmt.Errorf("decode forecasting state: %d bytes, want %d", len(data), want)
	}
	if err := binary.Read(bytes.NewReader(data[1:]), binary.LittleEndian, s); err != nil {
		return fmt.Errorf("decode forecasting state: %w", err)
	}
	return nil
}
