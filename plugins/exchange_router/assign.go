package exchangerouter

import (
	"cmp"
	"slices"
)

// Partition assignment. It is pure and allocation-free per message:
//
//   - Each exchange owns a ranked list of partitions: all partitions ordered
//     by a rendezvous (highest-random-weight) score of (exchange, partition),
//     cut to the exchange's share. The list depends on nothing but the
//     exchange, the partition count and the share, so adding or removing
//     another exchange never moves it.
//   - A message goes to the list entry that a jump consistent hash of its
//     symbol picks. One exchange+symbol therefore always lands on one
//     partition, in order. Raising an exchange's share extends its list at
//     the end, and jump hashing then moves only the symbols that go to the
//     new partitions.

// rankedPartitions returns the share partitions of n with the highest
// rendezvous scores for exchange, best first.
func rankedPartitions(exchange string, n, share int) []int32 {
	type scored struct {
		partition int32
		score     uint64
	}
	h := hashString(exchange)
	all := make([]scored, n)
	for p := range all {
		all[p] = scored{int32(p), mix(h ^ mix(uint64(p)+0x9e3779b97f4a7c15))}
	}
	slices.SortFunc(all, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.partition, b.partition)
	})
	share = min(max(share, 1), n)
	ranked := make([]int32, share)
	for i := range ranked {
		ranked[i] = all[i].partition
	}
	return ranked
}

// pick returns the partition of ranked that symbol goes to.
func pick(ranked []int32, symbol []byte) int32 {
	return ranked[jump(mix(hashBytes(symbol)), len(ranked))]
}

// jump is Lamping and Veach's jump consistent hash: a bucket in [0, n) for
// key, where growing n to n+1 moves only 1/(n+1) of the keys, all to the new
// bucket.
func jump(key uint64, n int) int {
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// FNV-1a, 64 bit.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// mix is the splitmix64 finaliser: FNV alone leaves short, similar inputs
// (partition numbers, BTC/BCH) poorly spread in the high bits.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
