//! `loadgen --report FILE.html`: one self-contained page (inline CSS and SVG, no script, no
//! external asset) with throughput over time, the latency distribution and the status
//! counts, so a load tester can look rather than read.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::loadgen::Summary;

/// One second of the run, as the progress sampler saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub second: u64,
    pub completed: u64,
    pub failed: u64,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 32.0;
const TOP: f64 = 12.0;
/// Latency distribution buckets (log scale), and the percentiles shown.
const BUCKETS: usize = 40;
const PERCENTILES: [f64; 8] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A round number at or above `value` (1, 2, 5 × 10ⁿ), for axis tops.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|step| step * magnitude).find(|top| *top >= value).unwrap_or(10.0 * magnitude)
}

fn axes(svg: &mut String, y_top: f64, y_label: &str, x_label: &str) {
    let plot_bottom = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{plot_bottom}" class="axis"/><line x1="{LEFT}" y1="{plot_bottom}" x2="{WIDTH}" y2="{plot_bottom}" class="axis"/>"##
    );
    for tick in 0..=4 {
        let value = y_top * f64::from(tick) / 4.0;
        let y = plot_bottom - (plot_bottom - TOP) * f64::from(tick) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{WIDTH}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y + 4.0,
            format_number(value)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="12" y="{:.1}" class="label" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text><text x="{:.1}" y="{}" class="label" text-anchor="middle">{}</text>"##,
        (TOP + plot_bottom) / 2.0,
        (TOP + plot_bottom) / 2.0,
        escape(y_label),
        (LEFT + WIDTH) / 2.0,
        HEIGHT - 4.0,
        escape(x_label)
    );
}

fn format_number(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.1}M", value / 1_000_000.0)
    } else if value >= 10_000.0 {
        format!("{:.0}k", value / 1_000.0)
    } else if value >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// Requests (and failures) per second over the run.
fn throughput_chart(samples: &[Sample]) -> String {
    let mut svg = format!(r##"<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="throughput over time">"##);
    let top = nice_ceiling(samples.iter().map(|sample| sample.completed).max().unwrap_or(0) as f64);
    axes(&mut svg, top, "requests / s", "seconds since start");
    let last = samples.last().map_or(1, |sample| sample.second.max(1)) as f64;
    let plot_bottom = HEIGHT - BOTTOM;
    let point = |second: u64, value: u64| {
        let x = LEFT + (WIDTH - LEFT) * second as f64 / last;
        let y = plot_bottom - (plot_bottom - TOP) * value as f64 / top;
        format!("{x:.1},{y:.1}")
    };
    let completed: Vec<String> = samples.iter().map(|sample| point(sample.second, sample.completed)).collect();
    let failed: Vec<String> = samples.iter().map(|sample| point(sample.second, sample.failed)).collect();
    let _ =
        write!(svg, r##"<polyline points="{}" class="line ok"/><polyline points="{}" class="line bad"/>"##, completed.join(" "), failed.join(" "));
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let x = LEFT + (WIDTH - LEFT) * tick;
        let anchor = if tick == 1.0 { "end" } else { "middle" };
        let label = if last < 10.0 { format!("{:.1}", last * tick) } else { format!("{:.0}", last * tick) };
        let _ = write!(svg, r##"<text x="{x:.1}" y="{:.1}" class="tick" text-anchor="{anchor}">{label}</text>"##, plot_bottom + 14.0);
    }
    svg.push_str("</svg>");
    svg
}

/// How many requests took each latency (log-scale buckets from the fastest to the slowest).
fn latency_chart(latency: &Histogram<u64>) -> String {
    let mut svg = format!(r##"<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="latency distribution">"##);
    let (low, high) = (latency.min().max(1) as f64, latency.max().max(2) as f64);
    let ratio = (high / low).max(1.000_001).powf(1.0 / BUCKETS as f64);
    let mut counts = [0u64; BUCKETS];
    for value in latency.iter_recorded() {
        let micros = value.value_iterated_to().max(1) as f64;
        let index = ((micros / low).ln() / ratio.ln()).floor().clamp(0.0, (BUCKETS - 1) as f64) as usize;
        counts[index] += value.count_since_last_iteration();
    }
    let top = nice_ceiling(counts.iter().copied().max().unwrap_or(0) as f64);
    axes(&mut svg, top, "requests", "latency (ms, log scale)");
    let plot_bottom = HEIGHT - BOTTOM;
    let bar = (WIDTH - LEFT) / BUCKETS as f64;
    for (index, count) in counts.iter().enumerate() {
        let height = (plot_bottom - TOP) * *count as f64 / top;
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{height:.1}" class="bar"><title>{} requests from {:.2} ms</title></rect>"##,
            LEFT + bar * index as f64 + 1.0,
            plot_bottom - height,
            (bar - 2.0).max(1.0),
            count,
            low * ratio.powi(index as i32) / 1000.0
        );
    }
    for tick in [0usize, BUCKETS / 4, BUCKETS / 2, 3 * BUCKETS / 4, BUCKETS] {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"##,
            LEFT + bar * tick as f64,
            plot_bottom + 14.0,
            format_number(low * ratio.powi(tick as i32) / 1000.0)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page.
pub fn render(summary: &Summary, samples: &[Sample], latency: &Histogram<u64>, title: &str) -> String {
    let mut statuses = String::new();
    let total = summary.requests.max(1) as f64;
    for (status, count) in &summary.statuses {
        let class = if status.starts_with('2') { "ok" } else { "bad" };
        let _ = write!(
            statuses,
            r##"<tr><td>{}</td><td class="num">{count}</td><td><div class="meter {class}" style="width:{:.1}%"></div></td></tr>"##,
            escape(status),
            100.0 * *count as f64 / total
        );
    }
    let mut percentiles = String::new();
    for percentile in PERCENTILES {
        let _ = write!(
            percentiles,
            r##"<tr><td>p{percentile}</td><td class="num">{:.2} ms</td></tr>"##,
            latency.value_at_percentile(percentile) as f64 / 1000.0
        );
    }
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 820px; color: #1d232a; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
.cards {{ display: flex; gap: 12px; flex-wrap: wrap; }}
.card {{ border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 14px; min-width: 120px; }}
.card b {{ display: block; font-size: 20px; }}
svg {{ width: 100%; height: auto; background: #fafbfc; border: 1px solid #eaeef2; border-radius: 6px; }}
.axis {{ stroke: #57606a; }} .grid {{ stroke: #eaeef2; }} .tick, .label {{ font-size: 11px; fill: #57606a; }}
.line {{ fill: none; stroke-width: 2; }} .line.ok {{ stroke: #0969da; }} .line.bad {{ stroke: #cf222e; }}
.bar {{ fill: #0969da; }}
table {{ border-collapse: collapse; }} td {{ padding: 3px 10px; border-bottom: 1px solid #eaeef2; }} .num {{ text-align: right; }}
.meter {{ height: 10px; min-width: 2px; }} .meter.ok {{ background: #1a7f37; }} .meter.bad {{ background: #cf222e; }}
</style></head><body>
<h1>{title}</h1>
<p>{target:?} · {connections} connections · {partners} partner(s) · {duration:.1} s</p>
<div class="cards">
<div class="card">requests<b>{requests}</b></div>
<div class="card">throughput<b>{rps:.0}/s</b></div>
<div class="card">succeeded<b>{succeeded_rate:.0}/s</b></div>
<div class="card">p50<b>{p50:.2} ms</b></div>
<div class="card">p99<b>{p99:.2} ms</b></div>
<div class="card">max<b>{max:.2} ms</b></div>
</div>
<h2>Throughput over time</h2>
<p>Completed requests per second (blue) and those that were not 2xx (red).</p>
{throughput}
<h2>Latency distribution</h2>
{latency_svg}
<table>{percentiles}</table>
<h2>Statuses</h2>
<table>{statuses}</table>
</body></html>
"##,
        title = escape(title),
        target = summary.target,
        connections = summary.connections,
        partners = summary.partners,
        duration = summary.duration_secs,
        requests = summary.requests,
        rps = summary.requests_per_sec,
        succeeded_rate = summary.succeeded_per_sec,
        p50 = summary.p50_ms,
        p99 = summary.p99_ms,
        max = summary.max_ms,
        throughput = throughput_chart(samples),
        latency_svg = latency_chart(latency),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_holds_its_figures_and_no_external_asset() {
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        for micros in [900, 1_200, 1_500, 2_000, 8_000, 45_000] {
            latency.record(micros).expect("in range");
        }
        let summary = Summary {
            target: crate::loadgen::Target::Engine,
            connections: 4,
            partners: 2,
            duration_secs: 3.0,
            requests: 6,
            requests_per_sec: 2.0,
            succeeded: 5,
            succeeded_per_sec: 1.7,
            p50_ms: 1.5,
            p99_ms: 45.0,
            p999_ms: 45.0,
            max_ms: 45.0,
            statuses: [("200".to_owned(), 5), ("503 OVERLOADED".to_owned(), 1)].into_iter().collect(),
        };
        let samples = [Sample { second: 1, completed: 2, failed: 0 }, Sample { second: 2, completed: 3, failed: 1 }];
        let page = render(&summary, &samples, &latency, "run <1>");
        assert!(page.contains("run &lt;1&gt;"), "titles are escaped");
        assert!(page.contains("503 OVERLOADED") && page.contains("<polyline") && page.contains("<rect"));
        assert_eq!(page.matches("<svg").count(), 2);
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"), "self-contained");
        let bars: u64 = page.matches("requests from").count() as u64;
        assert_eq!(bars, BUCKETS as u64);
    }
}
