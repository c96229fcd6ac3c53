package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// point is one measured figure of a series.
type point struct{ X, Y float64 }

// series is one line of the chart.
type series struct {
	Label  string
	Color  string
	Dashed bool
	Points []point
}

// chart is a log-log line chart.
type chart struct {
	Title  string
	XLabel string
	YLabel string
	Series []series
}

const (
	svgW, svgH                      = 760, 440
	padL, padR, padT, padB          = 78, 190, 40, 52
	plotW                           = svgW - padL - padR
	plotH                           = svgH - padT - padB
	fontStyle                       = `font-family="sans-serif" font-size="12"`
	axisColor, gridColor, textColor = "#444", "#ddd", "#222"
)

// logRange returns the decades [lo, hi] (as powers of ten) that cover vals.
func logRange(vals []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if v > 0 {
			lo = math.Min(lo, math.Floor(math.Log10(v)))
			hi = math.Max(hi, math.Ceil(math.Log10(v)))
		}
	}
	if math.IsInf(lo, 0) {
		return 0, 1
	}
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi
}

// scale maps v (> 0) on a log axis of decades [lo, hi] to [0, length].
func scale(v, lo, hi, length float64) float64 {
	return (math.Log10(v) - lo) / (hi - lo) * length
}

// formatMicros labels a duration given in µs.
func formatMicros(us float64) string {
	switch {
	case us >= 1e6:
		return trimNum(us/1e6) + " s"
	case us >= 1e3:
		return trimNum(us/1e3) + " ms"
	default:
		return trimNum(us) + " µs"
	}
}

func trimNum(v float64) string {
	s := fmt.Sprintf("%.3g", v)
	return s
}

// svg renders the chart: x = machine count, y = µs per lookup, both log scale.
func (c chart) svg() []byte {
	var xs, ys []float64
	for _, s := range c.Series {
		for _, p := range s.Points {
			xs = append(xs, p.X)
			ys = append(ys, p.Y)
		}
	}
	xlo, xhi := logRange(xs)
	ylo, yhi := logRange(ys)
	X := func(v float64) float64 { return padL + scale(v, xlo, xhi, plotW) }
	Y := func(v float64) float64 { return padT + plotH - scale(v, ylo, yhi, plotH) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`+"\n", svgW, svgH)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-family="sans-serif" font-size="14" font-weight="bold" fill="%s">%s</text>`+"\n", padL, textColor, html.EscapeString(c.Title))

	// Grid and ticks: every decade on both axes, plus the measured machine counts.
	for e := ylo; e <= yhi; e++ {
		v := math.Pow(10, e)
		y := Y(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", padL, y, padL+plotW, y, gridColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" %s text-anchor="end" fill="%s">%s</text>`+"\n", padL-6, y+4, fontStyle, textColor, formatMicros(v))
	}
	xt := map[float64]bool{}
	for e := xlo; e <= xhi; e++ {
		xt[math.Pow(10, e)] = true
	}
	for _, v := range xs {
		xt[v] = true
	}
	ticks := make([]float64, 0, len(xt))
	for v := range xt {
		ticks = append(ticks, v)
	}
	slices.Sort(ticks)
	lastLabel := math.Inf(-1)
	for _, v := range ticks {
		x := X(v)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, padT, x, padT+plotH, gridColor)
		if x-lastLabel >= 34 { // keep labels apart
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" %s text-anchor="middle" fill="%s">%s</text>`+"\n", x, padT+plotH+18, fontStyle, textColor, groupThousands(fmt.Sprintf("%.0f", v)))
			lastLabel = x
		}
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", padL, padT, plotW, plotH, axisColor)
	fmt.Fprintf(&b, `<text x="%d" y="%d" %s text-anchor="middle" fill="%s">%s</text>`+"\n", padL+plotW/2, svgH-12, fontStyle, textColor, html.EscapeString(c.XLabel))
	fmt.Fprintf(&b, `<text x="16" y="%d" %s text-anchor="middle" fill="%s" transform="rotate(-90 16 %d)">%s</text>`+"\n", padT+plotH/2, fontStyle, textColor, padT+plotH/2, html.EscapeString(c.YLabel))

	// Lines, markers and legend.
	for i, s := range c.Series {
		pts := slices.Clone(s.Points)
		slices.SortFunc(pts, func(a, b point) int { return cmpFloat(a.X, b.X) })
		var path []string
		for _, p := range pts {
			if p.X > 0 && p.Y > 0 {
				path = append(path, fmt.Sprintf("%.1f,%.1f", X(p.X), Y(p.Y)))
			}
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		if len(path) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(path, " "), s.Color, dash)
		}
		for _, p := range path {
			xy := strings.SplitN(p, ",", 2)
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3.5" fill="%s"/>`+"\n", xy[0], xy[1], s.Color)
		}
		ly := padT + 12 + i*20
		lx := padL + plotW + 14
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly, lx+26, ly, s.Color, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d" %s fill="%s">%s</text>`+"\n", lx+32, ly+4, fontStyle, textColor, html.EscapeString(s.Label))
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var daemonColors = map[string]string{"252": "#d62728", "257": "#1f77b4", "ours": "#2ca02c"}

// userdbChart draws the cost of one GetUserRecord (µs, from the lookups/s of the
// persistent-connection rows) against the machine count, per daemon: by uid
// solid, by name dashed.
func userdbChart(r *report, sizes []int) chart {
	c := chart{
		Title:  "userdb GetUserRecord cost vs registered machines (persistent connection)",
		XLabel: "machines registered (leaders in user namespaces)",
		YLabel: "time per lookup (log scale)",
	}
	for _, d := range r.Daemons {
		color := daemonColors[d]
		if color == "" {
			color = "#7f7f7f"
		}
		for i, v := range userdbVariants[:2] {
			s := series{Label: d + " " + strings.SplitN(v.name, ",", 2)[0], Color: color, Dashed: i == 1}
			for _, n := range sizes {
				for _, x := range r.Rows {
					if x.Name == rowUserdb(v.name, n) {
						if cl, ok := x.Cells[d]; ok && cl.Has && cl.Value > 0 {
							s.Points = append(s.Points, point{float64(n), 1e6 / cl.Value})
						}
					}
				}
			}
			if len(s.Points) > 0 {
				c.Series = append(c.Series, s)
			}
		}
	}
	return c
}
