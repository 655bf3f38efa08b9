// Package history reads an asset's past readings from InfluxDB, or from a
// file, as the rows a model learns normal behaviour from.
//
// A read resamples the measurement "readings" to a regular step (the mean
// of each window [t, t+Step), windows aligned to the Unix epoch), removes
// the periods that were not normal operation (alerts, maintenance and
// abnormal annotations) and returns per asset a Series: contiguous Segments
// of rows, the Gaps where no data was stored, the Excluded spans with what
// they removed, and a hash of the data for the model's lineage.
//
// Invariants of a Series:
//
//   - Sensors are in a fixed order: the query's, or sorted by name; a cell
//     without data is NaN, never filled in. No row is invented: a step with
//     no reading of any sensor has no row.
//   - Inside a Segment rows are exactly one Step apart; segments are in
//     time order and do not touch (a gap or an exclusion lies between).
//   - Rows + the rows of every Exclusion = the rows read; every step of the
//     range is a row read or lies in a Gap.
//   - Hash depends only on Sensors, the row times and the values, so the
//     same data read in any chunking, from InfluxDB or a file, hashes alike.
//
// InfluxDB is read in chunks of Query.Chunk, one streamed Flux query each;
// the mean of each step is taken by InfluxDB (aggregateWindow) or, for
// InfluxDB 1.8 whose aggregateWindow is slow, by the reader from the
// stored points (Config.Resample), with the same rows either way.
// A chunk is held aside until its response is complete, so a chunk retried
// after a failure never adds rows twice. The final rows are kept in one
// flat []float64 per asset; nothing proportional to Flux's table encoding
// of the whole range is held.
package history
