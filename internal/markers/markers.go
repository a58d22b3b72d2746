// Package markers rewrites the generated part of a document: what lies
// between a begin and an end marker line (README's compatibility table,
// flags and metrics tables).
package markers

import (
	"bytes"
	"fmt"
)

// Between returns what doc holds between begin and end, the text right
// after begin up to end; an error when doc lacks either, in that order.
func Between(doc []byte, begin, end string) ([]byte, error) {
	i, j, err := find(doc, begin, end)
	if err != nil {
		return nil, err
	}
	return doc[i:j], nil
}

// Replace returns doc with what lies between begin and end replaced by
// body.
func Replace(doc []byte, begin, end string, body []byte) ([]byte, error) {
	i, j, err := find(doc, begin, end)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(doc)-(j-i)+len(body))
	out = append(out, doc[:i]...)
	out = append(out, body...)
	return append(out, doc[j:]...), nil
}

func find(doc []byte, begin, end string) (i, j int, err error) {
	i, j = bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i+len(begin) {
		return 0, 0, fmt.Errorf("no %q ... %q markers", bytes.TrimSpace([]byte(begin)), end)
	}
	return i + len(begin), j, nil
}
