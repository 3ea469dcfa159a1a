//! Charts drawn on the server as SVG: collateral against supply over time, and the trust graph
//! around one member. No script, no library: a page of numbers a person would rather look at.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::html::{esc, num};
use crate::history::Point;
use crate::views::Neighbour;

const W: f64 = 640.0;
const H: f64 = 220.0;
const PAD: f64 = 40.0;

/// Collateral (blue) and supply (orange) as step lines; supply must stay under collateral.
pub fn collateral_chart(points: &[Point], now: u64) -> String {
    if points.is_empty() {
        return "<p>No history yet: nothing has been deposited.</p>".into();
    }
    let t0 = points[0].time;
    let t1 = now.max(points[points.len() - 1].time).max(t0 + 1);
    let top = points
        .iter()
        .map(|p| p.collateral.max(p.supply))
        .max()
        .unwrap_or(0)
        .max(1);
    let x = |t: u64| PAD + (t - t0) as f64 / (t1 - t0) as f64 * (W - 2.0 * PAD);
    let y = |v: u64| H - PAD + -(v as f64 / top as f64) * (H - 2.0 * PAD);
    let steps = |value: &dyn Fn(&Point) -> u64| {
        let mut d = String::new();
        let mut last: Option<u64> = None;
        for p in points {
            let (px, py) = (x(p.time), y(value(p)));
            match last {
                None => {
                    let _ = write!(d, "M{px:.1},{py:.1}");
                }
                Some(prev) => {
                    let _ = write!(d, " L{px:.1},{:.1} L{px:.1},{py:.1}", y(prev));
                }
            }
            last = Some(value(p));
        }
        if let Some(v) = last {
            let _ = write!(d, " L{:.1},{:.1}", x(t1), y(v));
        }
        d
    };
    let collateral = steps(&|p| p.collateral);
    let supply = steps(&|p| p.supply);
    let last = points[points.len() - 1];
    format!(
        "<svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" id=\"collateral-chart\" \
         aria-label=\"collateral {c} sat against supply {s} tokens\" style=\"max-width:100%;height:auto;background:#fff\">\
         <line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"4\" y=\"{PAD}\" font-size=\"11\">{top}</text><text x=\"24\" y=\"{b}\" font-size=\"11\">0</text>\
         <path d=\"{collateral}\" fill=\"none\" stroke=\"#1d70b8\" stroke-width=\"2.5\"/>\
         <path d=\"{supply}\" fill=\"none\" stroke=\"#f08c00\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\
         <text x=\"{PAD}\" y=\"16\" font-size=\"12\" fill=\"#1d70b8\">collateral {c} sat</text>\
         <text x=\"240\" y=\"16\" font-size=\"12\" fill=\"#f08c00\">supply {s} tokens</text></svg>",
        b = H - PAD,
        r = W - PAD,
        top = num(top),
        c = num(last.collateral),
        s = num(last.supply),
    )
}

fn signal_colour(signal: &str) -> &'static str {
    match signal {
        "certification" => "#2b9348",
        "attestation" => "#1d70b8",
        "follow" => "#8d99ae",
        _ => "#d00000",
    }
}

/// `center` in the middle, the identities it gives signals to and gets signals from around it;
/// each edge coloured by its signal, its arrow pointing from rater to ratee, each node sized by
/// its score and linking to its page.
pub fn trust_graph(center: &str, center_score: f64, neighbours: &[Neighbour]) -> String {
    let size = 420.0;
    let (cx, cy) = (size / 2.0, size / 2.0);
    let mut others: BTreeMap<&str, f64> = BTreeMap::new();
    for n in neighbours {
        others.insert(&n.pubkey, n.score);
    }
    let mut out = format!(
        "<svg viewBox=\"0 0 {size} {size}\" width=\"{size}\" height=\"{size}\" id=\"trust-graph\" role=\"img\" \
         aria-label=\"{} signals around this member\" style=\"max-width:100%;height:auto;background:#fff\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" \
         markerHeight=\"6\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/>\
         </marker></defs>",
        neighbours.len()
    );
    let count = others.len().max(1) as f64;
    let place: BTreeMap<&str, (f64, f64)> = others
        .keys()
        .enumerate()
        .map(|(i, k)| {
            let a = i as f64 / count * std::f64::consts::TAU;
            (*k, (cx + 160.0 * a.cos(), cy + 160.0 * a.sin()))
        })
        .collect();
    let radius = |score: f64| 5.0 + 14.0 * score.clamp(0.0, 1.0);
    for n in neighbours {
        let (nx, ny) = place[n.pubkey.as_str()];
        let ((x1, y1, r1), (x2, y2, r2)) = if n.outgoing {
            ((cx, cy, radius(center_score)), (nx, ny, radius(n.score)))
        } else {
            ((nx, ny, radius(n.score)), (cx, cy, radius(center_score)))
        };
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let _ = write!(
            out,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" \
             stroke-width=\"1.6\" marker-end=\"url(#arrow)\"><title>{}</title></line>",
            x1 + dx / len * r1,
            y1 + dy / len * r1,
            x2 - dx / len * (r2 + 2.0),
            y2 - dy / len * (r2 + 2.0),
            signal_colour(&n.signal),
            esc(&n.signal)
        );
    }
    for (key, score) in &others {
        let (x, y) = place[key];
        let _ = write!(
            out,
            "<a href=\"/identities/{k}\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{:.1}\" fill=\"#a8dadc\" \
             stroke=\"#1d3557\"><title>{k} · trust {score:.3}</title></circle></a>",
            radius(*score),
            k = esc(key),
        );
    }
    let _ = write!(
        out,
        "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"{:.1}\" fill=\"#e63946\"><title>{} · trust {center_score:.3}</title></circle>\
         <text x=\"8\" y=\"{}\" font-size=\"11\"><tspan fill=\"#2b9348\">certification</tspan> \
         <tspan fill=\"#1d70b8\">attestation</tspan> <tspan fill=\"#8d99ae\">follow</tspan> \
         <tspan fill=\"#d00000\">report / dispute lost</tspan></text></svg>",
        radius(center_score),
        esc(center),
        size - 8.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collateral_chart_draws_both_lines_and_the_latest_figures() {
        let points = [
            Point {
                time: 100,
                collateral: 90_000,
                supply: 90_000,
            },
            Point {
                time: 200,
                collateral: 40_250,
                supply: 40_000,
            },
        ];
        let svg = collateral_chart(&points, 300);
        assert_eq!(svg.matches("<path").count(), 2, "collateral and supply");
        assert!(svg.contains("collateral 40\u{202f}250 sat"), "{svg}");
        assert!(collateral_chart(&[], 0).contains("No history"));
    }

    #[test]
    fn the_trust_graph_places_each_neighbour_once_with_an_edge_per_signal() {
        let n = |k: &str, signal: &str, outgoing| Neighbour {
            pubkey: k.repeat(64),
            signal: signal.into(),
            outgoing,
            score: 0.5,
        };
        let svg = trust_graph(
            &"c".repeat(64),
            0.3,
            &[
                n("a", "certification", false),
                n("a", "follow", true),
                n("b", "attestation", false),
            ],
        );
        assert_eq!(svg.matches("<line").count(), 3);
        assert_eq!(
            svg.matches("<circle").count(),
            3,
            "two neighbours and the member"
        );
        assert!(svg.contains("/identities/aaaa"));
    }
}
