# Charts of the transport benchmark (bench/transport_bench.c output).
# gnuplot -e "datadir='build/bench'; outdir='build/bench'" bench/plot-transport.gp
load datadir.'/transport-names.gp'

set terminal pngcairo size 900,540 font ",10" noenhanced
set grid
set key bottom right

set output outdir.'/transport-latency-cdf.png'
set title "Call latency at 1 in flight (16 B request -> 4 KiB reply, loopback)"
set xlabel "latency (us, log scale)"
set ylabel "fraction of calls"
set logscale x
set yrange [0:1]
plot for [n in names] datadir.'/transport-lat-'.n.'.dat' using 1:2 \
	with lines linewidth 2 title n

set output outdir.'/transport-throughput.png'
set title "Calls/s vs calls in flight (16 B -> 4 KiB, loopback; median and range of rounds)"
set xlabel "calls in flight (threads)"
set ylabel "calls/s"
set logscale x 2
unset logscale y
set yrange [0:*]
set key top left
set xtics ("1" 1, "8" 8, "32" 32, "128" 128)
set xrange [0.8:160]
# Points: median of the rounds; bars: slowest and fastest round.
plot for [n in names] datadir.'/transport-tput-'.n.'.dat' using 1:2:3:4 \
	with yerrorlines linewidth 2 pointtype 7 title n
