package sqlite

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

// filledUsage returns a record with every field set, by reflection, so that
// a field added to kve.Usage shows up here without anyone listing it.
func filledUsage(t *testing.T) kve.Usage {
	t.Helper()
	var u kve.Usage
	v := reflect.ValueOf(&u).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch name := v.Type().Field(i).Name; f.Kind() {
		case reflect.String:
			f.SetString(name + " \"quoted\" \x00 ü\xff")
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(1000 + i))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				t.Fatalf("field %s of type %s: teach appendChunk and this test about it", name, f.Type())
			}
			f.Set(reflect.ValueOf(time.Date(2026, 11, 27, 12, 34, 56, 789123456, time.UTC)))
		default:
			t.Fatalf("field %s of kind %s: teach appendChunk and this test about it", name, f.Kind())
		}
	}
	return u
}

// chunkRecordsOf returns records of one chunk key, in arrival order, that
// exercise each encoding: every field set, strings repeated from the
// previous record, emptied after it, negative and extreme numbers.
func chunkRecordsOf(t *testing.T) []kve.Usage {
	t.Helper()
	full := filledUsage(t)
	same := full
	same.RequestID, same.At = "req_same", full.At.Add(time.Second)
	empty := kve.Usage{RequestID: "req_empty", At: full.At.Add(2 * time.Second),
		OrgID: full.OrgID, TokenID: full.TokenID, UserID: full.UserID}
	extreme := empty
	extreme.RequestID, extreme.At, extreme.Model = "req_extreme", full.At.Add(chunkSpan), "gpt-test"
	extreme.Status, extreme.Duration, extreme.Upstream = -1, math.MaxInt64, math.MinInt64
	extreme.BytesIn, extreme.CostMicro = math.MinInt64, math.MaxInt64
	return []kve.Usage{full, same, empty, extreme}
}

// stored is what a record reads back as: the user agent is not stored,
// times are whole milliseconds.
func stored(u kve.Usage) kve.Usage {
	u.UserAgent = ""
	u.At = fromMillis(millis(u.At))
	return u
}

func pointers(records []kve.Usage) []*kve.Usage {
	out := make([]*kve.Usage, len(records))
	for i := range records {
		out[i] = &records[i]
	}
	return out
}

func TestChunkRoundTrips(t *testing.T) {
	records := chunkRecordsOf(t)
	for _, tc := range []struct {
		name    string
		records []kve.Usage
	}{
		{"every encoding", records},
		{"one record", records[:1]},
		{"zero record", []kve.Usage{{RequestID: "req_zero"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := appendChunk(nil, pointers(tc.records))
			key, first := keyOf(&tc.records[0]), millis(tc.records[0].At)
			got, err := decodeChunk(nil, key, first, string(data))
			if err != nil {
				t.Fatalf("decodeChunk: %v", err)
			}
			var want []kve.Usage
			for _, u := range tc.records {
				want = append(want, stored(u))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("records mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestChunkCorrupt cuts a chunk at every length: a cut at the end of a
// record reads as the records before it, any other cut, a wrong version or
// an overlong varint is an error, never a panic.
func TestChunkCorrupt(t *testing.T) {
	records := chunkRecordsOf(t)
	data := appendChunk(nil, pointers(records))
	ends := map[int]int{} // length → records it holds
	for n := 1; n <= len(records); n++ {
		ends[len(appendChunk(nil, pointers(records[:n])))] = n
	}
	key, first := keyOf(&records[0]), millis(records[0].At)
	for cut := range len(data) {
		got, err := decodeChunk(nil, key, first, string(data[:cut]))
		if n, ok := ends[cut]; ok {
			if err != nil || len(got) != n {
				t.Errorf("cut at %d, the end of record %d: %d records, %v; want %d, nil", cut, n, len(got), err, n)
			}
		} else if !errors.Is(err, errChunk) {
			t.Errorf("cut at %d: %d records, %v; want %v", cut, len(got), err, errChunk)
		}
	}
	for name, bad := range map[string]string{
		"version":         "\x02" + string(data[1:]),
		"overlong":        "\x01" + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
		"string too long": "\x01\x7f",
	} {
		if _, err := decodeChunk(nil, key, first, bad); !errors.Is(err, errChunk) {
			t.Errorf("%s: error %v, want %v", name, err, errChunk)
		}
	}
}

func TestChunked(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	spaced := func(n int, gaps ...time.Duration) []*kve.Usage {
		var out []*kve.Usage
		at := start
		for i := range n {
			if i > 0 {
				at = at.Add(gaps[(i-1)%len(gaps)])
			}
			out = append(out, &kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, at), At: at})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		records []*kve.Usage
		want    []int // records per chunk
	}{
		{"one", spaced(1, 0), []int{1}},
		{"full chunks, then the rest", spaced(2*chunkRecords+88, time.Millisecond), []int{chunkRecords, chunkRecords, 88}},
		{"the span includes its end", spaced(3, chunkSpan/2), []int{3}},
		{"a late record starts a chunk", spaced(4, chunkSpan/2, chunkSpan/2+time.Millisecond, time.Hour), []int{2, 1, 1}},
		{"records of one millisecond", spaced(5, 0), []int{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			var all []*kve.Usage
			err := chunked(tc.records, func(c []*kve.Usage) error {
				if span := c[len(c)-1].At.Sub(c[0].At); span > chunkSpan {
					t.Errorf("chunk spans %v, want at most %v", span, chunkSpan)
				}
				got = append(got, len(c))
				all = append(all, c...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("chunk sizes (-want +got):\n%s", diff)
			}
			if len(all) != len(tc.records) {
				t.Errorf("%d records in chunks, want %d", len(all), len(tc.records))
			}
		})
	}
}
