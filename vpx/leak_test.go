//go:build matprofile

package vpx

import (
	"bytes"
	"testing"

	"gocv.io/x/gocv"
)

// TestNoMatLeaks: encoding, decoding and every conversion close the Mats
// they make (gocv counts them with -tags matprofile, as make test builds).
func TestNoMatLeaks(t *testing.T) {
	src := photo(t, "messi5.jpg", 320, 240) // made before counting; closed by the test
	before := gocv.MatProfile.Count()
	func() {
		e, err := NewEncoder(EncoderOptions{Width: 320, Height: 240})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		d, err := NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		i420, bgr := gocv.NewMat(), gocv.NewMat()
		defer i420.Close()
		defer bgr.Close()
		for i := 0; i < 3; i++ {
			frames, err := e.Encode(src, i == 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.DecodeBGR(frames[0], &i420, &bgr); err != nil {
				t.Fatal(err)
			}
			img, err := d.Decode(frames[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := img.ToBGR(&bgr); err != nil {
				t.Fatal(err)
			}
			if _, err := BGRToImage(src); err != nil {
				t.Fatal(err)
			}
		}
		d.Decode([]byte{1, 2, 3})
	}()
	if after := gocv.MatProfile.Count(); after != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("%d Mats leaked:\n%s", after-before, b.String())
	}
}
