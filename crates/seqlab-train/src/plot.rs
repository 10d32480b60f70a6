//! The loss-curve PNG: train loss (blue) and validation loss (red, where computed) against the
//! step, drawn with plotters into an RGB buffer and encoded by the `png` crate. plotters' text needs
//! system fonts, which a fresh machine may lack, so the plot has no text: the x axis spans steps
//! 0..last, the y axis 0..max loss (a grey line every 1 nat); the numbers are in metrics.jsonl.

use crate::error::{Result, TrainError};
use crate::metrics::MetricRow;
use plotters::prelude::*;
use std::path::Path;

/// Loss-curve file name in the run directory.
pub const PLOT_FILE: &str = "loss.png";

/// One point of the curves.
#[derive(Debug, Clone, Copy)]
pub struct CurvePoint {
    /// Step.
    pub step: u64,
    /// Train loss at that step.
    pub train: f64,
    /// Validation loss, when computed.
    pub val: Option<f64>,
}

/// Width and height of the PNG.
pub const PLOT_SIZE: (u32, u32) = (640, 400);

/// Renders the curves as PNG bytes.
pub fn loss_curve_png(points: &[CurvePoint]) -> std::result::Result<Vec<u8>, String> {
    let (w, h) = PLOT_SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max_step = points.iter().map(|p| p.step).max().unwrap_or(1).max(1) as f64;
        let max_loss = points
            .iter()
            .flat_map(|p| [Some(p.train), p.val])
            .flatten()
            .filter(|v| v.is_finite())
            .fold(1e-9f64, f64::max)
            * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(0f64..max_step, 0f64..max_loss)
            .map_err(|e| e.to_string())?;
        let grey = RGBColor(220, 220, 220);
        let mut level = 1.0;
        while level < max_loss {
            chart
                .draw_series(LineSeries::new([(0.0, level), (max_step, level)], grey))
                .map_err(|e| e.to_string())?;
            level += 1.0;
        }
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (max_step, 0.0)], BLACK))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (0.0, max_loss)], BLACK))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.step as f64, p.train)),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .filter_map(|p| p.val.map(|v| (p.step as f64, v))),
                RED.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    encode_png_rgb(&buf, w, h)
}

/// PNG (RGB, 8 bit) of `rgb` (h rows of w·3 bytes), compressed by the `png` crate.
pub fn encode_png_rgb(rgb: &[u8], w: u32, h: u32) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// The loss curve of `rows` (the kept rows of a resumed run, then this call's) as
/// `run/loss.png`, written atomically.
pub fn write_plot<'a>(run: &Path, rows: impl Iterator<Item = &'a MetricRow>) -> Result<()> {
    let points: Vec<CurvePoint> = rows
        .map(|r| CurvePoint {
            step: r.step,
            train: r.train_loss,
            val: r.val_loss,
        })
        .collect();
    let png = loss_curve_png(&points).map_err(TrainError::Plot)?;
    seqlab_io::write_atomic(run.join(PLOT_FILE), &png)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_curve_decodes_as_a_png_of_the_chart_size() {
        let png = loss_curve_png(&[
            CurvePoint {
                step: 1,
                train: 5.0,
                val: None,
            },
            CurvePoint {
                step: 2,
                train: 3.0,
                val: Some(3.5),
            },
        ])
        .unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        assert!(frame.width > 100 && frame.height > 100);
        // The train curve is drawn in blue: some pixel must be pure-ish blue.
        let blue = pixels[..frame.buffer_size()]
            .chunks_exact(3)
            .any(|p| p[2] > 200 && p[0] < 60 && p[1] < 60);
        assert!(blue, "no train curve pixels in the PNG");
    }
}
