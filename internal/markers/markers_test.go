package markers

import "testing"

func TestReplace(t *testing.T) {
	doc := []byte("head\n<!-- b -->\nold\n<!-- e -->\ntail\n")
	got, err := Replace(doc, "<!-- b -->\n", "<!-- e -->", []byte("new\n"))
	if err != nil || string(got) != "head\n<!-- b -->\nnew\n<!-- e -->\ntail\n" {
		t.Errorf("Replace = %q, %v", got, err)
	}
	if b, err := Between(got, "<!-- b -->\n", "<!-- e -->"); err != nil || string(b) != "new\n" {
		t.Errorf("Between = %q, %v", b, err)
	}
	for _, bad := range []string{"no markers\n", "<!-- e -->\n<!-- b -->\n", "<!-- b -->\n"} {
		if _, err := Replace([]byte(bad), "<!-- b -->\n", "<!-- e -->", nil); err == nil {
			t.Errorf("Replace accepted %q", bad)
		}
	}
}
