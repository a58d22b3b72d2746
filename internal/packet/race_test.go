//go:build race

package packet

// raceEnabled: the race detector's instrumentation changes allocation
// counts, so the allocation tests do not hold under -race.
const raceEnabled = true
