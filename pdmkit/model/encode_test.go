package model

import (
	"encoding/json"
	"io"
)

func jsonEncode(w io.Writer, a *Artifact) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(a)
}
