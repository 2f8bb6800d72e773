// Command plotscale draws the figures of scripts/bench-scale: it reads the
// CSV that script writes and draws, against the objects stored, the PUT
// rate, the GET and LIST latencies, resident memory, bytes on disk per
// object, and restart and garbage collection times, one PNG each.
//
// Usage: go run ./scripts/plotscale scale.csv outdir
package main

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// figure is one PNG: its title, the y axis, and the CSV columns drawn.
type figure struct {
	file, title, y string
	cols           []string
}

var figures = []figure{
	{"put-rate.png", "PUT rate", "PUTs per second", []string{"put_per_s"}},
	{"get-latency.png", "GET latency", "ms", []string{"get_p50_ms", "get_p99_ms"}},
	{"list-latency.png", "LIST (1,000 keys) latency", "ms", []string{"list_p50_ms", "list_p99_ms"}},
	{"memory.png", "Resident memory", "MiB", []string{"rss_mib"}},
	{"disk.png", "Bytes on disk per object", "bytes", []string{"disk_bytes_per_object", "meta_bytes_per_object", "object_bytes"}},
	{"restart-gc.png", "Restart and garbage collection", "seconds", []string{"restart_s", "gc_pass_s"}},
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: plotscale scale.csv outdir")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "plotscale:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return err
	}
	if len(rows) < 2 {
		return fmt.Errorf("%s: no rows", in)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	x, ok := col["objects"]
	if !ok {
		return fmt.Errorf("%s: no objects column", in)
	}
	colors := []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}}
	for _, fig := range figures {
		p := plot.New()
		p.Title.Text = fig.title
		p.X.Label.Text = "objects stored"
		p.Y.Label.Text = fig.y
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Legend.Top = true
		p.Legend.Left = true
		p.Y.Min = 0
		for i, name := range fig.cols {
			c, ok := col[name]
			if !ok {
				return fmt.Errorf("%s: no %s column", in, name)
			}
			var pts plotter.XYs
			for _, r := range rows[1:] {
				xv, err1 := strconv.ParseFloat(r[x], 64)
				yv, err2 := strconv.ParseFloat(r[c], 64)
				if err1 != nil || err2 != nil || xv <= 0 {
					continue // a figure the script could not take
				}
				pts = append(pts, plotter.XY{X: xv, Y: yv})
			}
			line, dots, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			line.Color, dots.Color = colors[i%len(colors)], colors[i%len(colors)]
			p.Add(line, dots)
			p.Legend.Add(name, line, dots)
		}
		if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, filepath.Join(out, fig.file)); err != nil {
			return err
		}
	}
	return nil
}
