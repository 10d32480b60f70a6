//! Rewrites a GGUF file with every matrix (2-D tensor) quantized to another ggml block type,
//! with candle's quantizer (ggml's reference rounding); metadata and 1-D tensors (norms) are
//! copied. For benchmarking one model at several types, e.g. SmolLM2 at Q8_0:
//!
//! ```sh
//! cargo run --release -p seqlab-lm --example requantize_gguf -- IN.gguf OUT.gguf q8_0
//! ```
//!
//! The weights pass through f32 (dequantize, then quantize), so requantizing a 4-bit file to
//! Q8_0 keeps its 4-bit values; the point is the layout, not the quality.

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use std::path::PathBuf;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, ty] = args.as_slice() else {
        return Err("usage: requantize_gguf IN.gguf OUT.gguf q8_0|q4_0|q4_1".into());
    };
    let dtype = match ty.to_ascii_lowercase().as_str() {
        "q8_0" => GgmlDType::Q8_0,
        "q4_0" => GgmlDType::Q4_0,
        "q4_1" => GgmlDType::Q4_1,
        other => return Err(format!("unknown type {other} (q8_0, q4_0 or q4_1)").into()),
    };
    let mut file = std::fs::File::open(input)?;
    let content = gguf_file::Content::read(&mut file)?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let t = content.tensor(&mut file, name, &Device::Cpu)?;
        let t = if t.shape().rank() == 2 && t.dtype() != dtype {
            QTensor::quantize(&t.dequantize(&Device::Cpu)?, dtype)?
        } else {
            t
        };
        tensors.push((name.clone(), t));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let out = PathBuf::from(output);
    let mut bytes = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut bytes, &metadata, &tensor_refs)?;
    seqlab_io::write_atomic(&out, bytes.get_ref())?;
    eprintln!(
        "wrote {} ({} tensors, matrices {ty})",
        out.display(),
        tensors.len()
    );
    Ok(())
}
