package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"

	"github.com/pdmstream/pdm/pdmkit/strictjson"
)

// The binary tensor data extension of the Open Inference Protocol: a
// request or response body is the JSON header, of the length this header
// gives, followed by the raw tensors, each little-endian and row-major, in
// the order of the JSON's inputs (outputs) that carry a binary_data_size
// parameter.
const (
	HeaderContentLength = "Inference-Header-Content-Length"
	paramBinarySize     = "binary_data_size"
	paramBinary         = "binary_data"
	paramBinaryOutput   = "binary_data_output"
)

// MaxInferBody bounds an inference request body, JSON and binary; a
// larger one is answered 413 (errInferTooLarge).
const MaxInferBody = 64 << 20

var errInferTooLarge = fmt.Errorf("request body larger than %d bytes", MaxInferBody)

// elemSize is the size in bytes of one element of each numeric datatype
// the scorer reads.
var elemSize = map[string]int{
	"FP64": 8, "FP32": 4,
	"INT64": 8, "INT32": 4, "INT16": 2, "INT8": 1,
	"UINT64": 8, "UINT32": 4, "UINT16": 2, "UINT8": 1,
}

// readInferBody reads the request body and splits it into the JSON header
// and the binary tensor data that follows it (nil without the extension).
func readInferBody(r *http.Request) (header, bin []byte, err error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxInferBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("request body: %w", err)
	}
	if len(body) > MaxInferBody {
		return nil, nil, errInferTooLarge
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, errors.New(`request body is empty: send {"inputs": [{"name": <sensor>, "shape": [n], "datatype": "FP64", "data": [...]}, ...]}, one tensor per sensor of the model`)
	}
	h := r.Header.Get(HeaderContentLength)
	if h == "" {
		return body, nil, nil
	}
	n, err := strconv.Atoi(h)
	if err != nil || n < 0 || n > len(body) {
		return nil, nil, fmt.Errorf("%s %q: want the JSON header's length in bytes, at most the body's %d", HeaderContentLength, h, len(body))
	}
	return body[:n], body[n:], nil
}

// decodeInferRequest decodes the JSON header strictly.
func decodeInferRequest(header []byte, req *inferRequest) error {
	err := strictjson.Unmarshal(header, req)
	if errors.Is(err, strictjson.ErrTrailing) {
		return errors.New("request body: data after the JSON header (binary tensors need the " + HeaderContentLength + " header)")
	}
	if err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

// intParam reads a non-negative integer parameter; ok is false when absent.
func intParam(p map[string]any, key string) (int, bool, error) {
	v, ok := p[key]
	if !ok {
		return 0, false, nil
	}
	f, isNum := v.(float64)
	if !isNum || f < 0 || f != math.Trunc(f) || f > MaxInferBody {
		return 0, true, fmt.Errorf("parameter %s %v: want a byte count", key, v)
	}
	return int(f), true, nil
}

// boolParam reads a boolean parameter; absent is false.
func boolParam(p map[string]any, key string) (bool, error) {
	v, ok := p[key]
	if !ok {
		return false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, fmt.Errorf("parameter %s %v: want true or false", key, v)
	}
	return b, nil
}

// tensorValues returns an input's elements as float64, from its binary
// data (consuming it from bin) or its JSON data, flat or nested.
func tensorValues(in *inferInput, size int, bin *[]byte) ([]float64, error) {
	es, ok := elemSize[in.Datatype]
	if !ok {
		return nil, fmt.Errorf("input %q: datatype %q is not numeric (FP64, FP32, INT64, INT32, UINT64, UINT32, ...)", in.Name, in.Datatype)
	}
	nb, isBinary, err := intParam(in.Parameters, paramBinarySize)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", in.Name, err)
	}
	if isBinary {
		if len(in.Data) > 0 && string(in.Data) != "null" {
			return nil, fmt.Errorf("input %q has both data and %s", in.Name, paramBinarySize)
		}
		if nb != size*es {
			return nil, fmt.Errorf("input %q: %s %d, but shape %v of %s is %d bytes", in.Name, paramBinarySize, nb, in.Shape, in.Datatype, size*es)
		}
		if nb > len(*bin) {
			return nil, fmt.Errorf("input %q: %s %d, but only %d bytes of binary data remain", in.Name, paramBinarySize, nb, len(*bin))
		}
		raw := (*bin)[:nb]
		*bin = (*bin)[nb:]
		return decodeLE(in.Datatype, raw, size), nil
	}
	if len(in.Data) == 0 || string(in.Data) == "null" {
		return nil, fmt.Errorf("input %q has no data and no %s parameter", in.Name, paramBinarySize)
	}
	var flat []float64
	if err := json.Unmarshal(in.Data, &flat); err != nil {
		var nested any
		if json.Unmarshal(in.Data, &nested) != nil {
			return nil, fmt.Errorf("input %q: data: %w", in.Name, err)
		}
		flat = flat[:0]
		if err := flatten(nested, &flat); err != nil {
			return nil, fmt.Errorf("input %q: data: %w", in.Name, err)
		}
	}
	if len(flat) != size {
		return nil, fmt.Errorf("input %q: shape %v holds %d values, data has %d", in.Name, in.Shape, size, len(flat))
	}
	return flat, nil
}

// flatten appends the numbers of a nested JSON array in row-major order.
func flatten(v any, out *[]float64) error {
	switch x := v.(type) {
	case float64:
		*out = append(*out, x)
	case []any:
		for _, e := range x {
			if err := flatten(e, out); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%v is not a number", v)
	}
	return nil
}

func decodeLE(dt string, b []byte, n int) []float64 {
	out := make([]float64, n)
	le := binary.LittleEndian
	for i := range out {
		switch dt {
		case "FP64":
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		case "FP32":
			out[i] = float64(math.Float32frombits(le.Uint32(b[4*i:])))
		case "INT64":
			out[i] = float64(int64(le.Uint64(b[8*i:])))
		case "INT32":
			out[i] = float64(int32(le.Uint32(b[4*i:])))
		case "INT16":
			out[i] = float64(int16(le.Uint16(b[2*i:])))
		case "INT8":
			out[i] = float64(int8(b[i]))
		case "UINT64":
			out[i] = float64(le.Uint64(b[8*i:]))
		case "UINT32":
			out[i] = float64(le.Uint32(b[4*i:]))
		case "UINT16":
			out[i] = float64(le.Uint16(b[2*i:]))
		case "UINT8":
			out[i] = float64(b[i])
		}
	}
	return out
}

// appendBinary appends a response tensor's data, little-endian.
func appendBinary(dst []byte, data any) []byte {
	switch x := data.(type) {
	case []float64:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
	case []bool:
		for _, v := range x {
			if v {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		}
	}
	return dst
}

// writeInferResponse answers with JSON, or with the JSON header and the
// binary data of the outputs marked binary when any is.
func writeInferResponse(w http.ResponseWriter, resp *inferResponse, binaryOut []bool) {
	var bin []byte
	for i := range resp.Outputs {
		if !binaryOut[i] {
			continue
		}
		o := &resp.Outputs[i]
		start := len(bin)
		bin = appendBinary(bin, o.Data)
		if o.Parameters == nil {
			o.Parameters = map[string]any{}
		}
		o.Parameters[paramBinarySize] = len(bin) - start
		o.Data = nil
	}
	if bin == nil {
		writeJSON(w, http.StatusOK, resp)
		return
	}
	header, err := json.Marshal(resp)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(HeaderContentLength, strconv.Itoa(len(header)))
	w.Header().Set("Content-Length", strconv.Itoa(len(header)+len(bin)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(header)
	_, _ = w.Write(bin)
}
