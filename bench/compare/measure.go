package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// rate runs op back to back for about dur (and at least minOps times) and
// returns operations per second.
func rate(dur time.Duration, minOps int, op func() error) (float64, error) {
	start := time.Now()
	n := 0
	for {
		if err := op(); err != nil {
			return 0, err
		}
		n++
		if el := time.Since(start); el >= dur && n >= minOps {
			return float64(n) / el.Seconds(), nil
		}
	}
}

// medianRate repeats rate reps times and returns the median and the samples.
func medianRate(reps int, dur time.Duration, minOps int, op func() error) (float64, []float64, error) {
	var s []float64
	for range reps {
		r, err := rate(dur, minOps, op)
		if err != nil {
			return 0, s, err
		}
		s = append(s, r)
	}
	return median(s), s, nil
}

// latencies times op back to back for about dur per repetition (at least minOps,
// at most maxOps calls), reps times, and returns the median of all calls in ms.
func latencies(reps int, dur time.Duration, minOps, maxOps int, op func() error) (float64, []float64, error) {
	var all, perRep []float64
	for range reps {
		med, s, err := latencyRun(dur, minOps, maxOps, op)
		if err != nil {
			return 0, perRep, err
		}
		all = append(all, s...)
		perRep = append(perRep, med)
	}
	return median(all), perRep, nil
}

// latencyRun is one repetition of latencies: the median and every call, in ms.
func latencyRun(dur time.Duration, minOps, maxOps int, op func() error) (float64, []float64, error) {
	var s []float64
	start := time.Now()
	for len(s) < maxOps && (len(s) < minOps || time.Since(start) < dur) {
		t := time.Now()
		if err := op(); err != nil {
			return 0, s, err
		}
		s = append(s, float64(time.Since(t).Nanoseconds())/1e6)
	}
	return median(s), s, nil
}

func median(s []float64) float64 {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// rssKiB returns VmRSS of a process in KiB.
func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
