# Throughput of bwprovd against the simulator's latency, one line per
# webex.max_in_flight (bench/bench.py writes the data and runs this):
#   gnuplot -e "datafile='sweep.dat'" -e "outfile='throughput.png'" \
#           -e "term='pngcairo'" -e "nblocks=4" -e "mifs='16 64 256 1024'" \
#           -e "ptitle='...'" bench/plot.gp
# sweep.dat: one block per max_in_flight (separated by two blank lines),
# columns: xpos latency_ms median min max bound ratio ratio_min ratio_max sim_capacity
if (!exists("datafile")) datafile = "sweep.dat"
if (!exists("outfile")) outfile = "throughput.png"
if (!exists("term")) term = "pngcairo"
if (!exists("nblocks")) nblocks = 1
if (!exists("mifs")) mifs = ""
if (!exists("ptitle")) ptitle = "bwprovd throughput"

if (term eq "svg") {
    set terminal svg size 1100,950 dynamic font "sans,12"
} else {
    eval sprintf("set terminal %s size 1100,950", term)
}
set output outfile
set datafile missing "NaN"
set multiplot layout 2,1 title ptitle
set grid
set key outside right top
set offsets 0.2, 0.2, 0, 0
set lmargin at screen 0.10
set rmargin at screen 0.68
set xlabel "simulator latency per request (ms)"

set logscale y
set ylabel "events/s end to end"
plot for [i=0:nblocks-1] datafile index i using 1:3:4:5:xtic(2) with yerrorlines lw 2 pt 7 \
         lc (i+1) title sprintf("in flight %s (median, min-max)", word(mifs, i+1)), \
     for [i=0:nblocks-1] datafile index i using 1:6 with lines dt 2 lw 1 lc (i+1) \
         title (i == 0 ? "bound min(in flight / latency, capacity)" : ""), \
     for [i=0:nblocks-1] datafile index i using 1:10 with points pt 4 ps 1.2 lc (i+1) \
         title (i == 0 ? "simulator capacity (wrk)" : "")

unset logscale y
set ylabel "throughput / bound"
set yrange [0:1.25]
plot for [i=0:nblocks-1] datafile index i using 1:7:8:9:xtic(2) with yerrorlines lw 2 pt 7 \
         lc (i+1) title sprintf("in flight %s", word(mifs, i+1)), \
     0.9 with lines dt 3 lw 2 lc rgb "red" title "target 0.9"
unset multiplot
