//! `gguf-gate score`: perplexity of a model on a text, and its KL divergence from a base
//! (live or recorded), through `quality::score_text`; `--record-base` keeps a compact
//! record of this model as a base, `--logits-out` every position's logits as `.npy`.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, Result};

use super::{configure_threads, emit, pretty_json, Outcome};
use crate::cli::{Format, ScoreArgs};
use gguf_gate::atomic::{write_atomic, write_text, Overwrite};
use gguf_gate::escape::visible;
use gguf_gate::fingerprint::Fingerprint;
use gguf_gate::gguf::GgufFile;
use gguf_gate::probe;
use gguf_gate::quality::record::{BaseRecord, RECORD_TOP_K_DEFAULT};
use gguf_gate::quality::{score_text, BaseSource, Score, ScoreOptions, BUNDLED_TEXT};
use gguf_gate::tokenizer::Tokenizer;

/// Texts larger than this are refused.
const MAX_TEXT_BYTES: u64 = 64 << 20;

pub fn run(args: ScoreArgs) -> Result<Outcome> {
    configure_threads(args.threads)?;
    let text = match &args.text {
        Some(p) => gguf_gate::input::read_text_bounded(p, MAX_TEXT_BYTES, "text")?,
        None => BUNDLED_TEXT.to_string(),
    };
    let mut file = GgufFile::open(&args.model)?;
    file.make_resident();
    let tok = probe::load_tokenizer(&file, args.tokenizer.as_deref())?;
    let mut base_file = args.base.as_deref().map(GgufFile::open).transpose()?;
    if let Some(base) = &mut base_file {
        base.make_resident();
    }
    let record = args
        .base_logits
        .as_deref()
        .map(|p| BaseRecord::read(p).map_err(anyhow::Error::msg))
        .transpose()?;
    let base = match (&base_file, &record) {
        (Some(f), _) => BaseSource::File {
            base: f,
            shared_tokenizer: args.tokenizer.is_some(),
        },
        (None, Some(r)) => BaseSource::Record(r),
        (None, None) => BaseSource::None,
    };
    let (score, tokens) = match &args.logits_out {
        None => score_text(&file, &tok, &text, base, options(&args, None))?,
        Some(path) => {
            // Every position's logits go straight to the file as they are computed; a
            // scoring error is reported as itself, not as a failure to write.
            let mut result = None;
            let written = write_atomic(path, Overwrite::Allow, |out| {
                let r = score_text(&file, &tok, &text, base, options(&args, Some(out)));
                let failed = r.is_err();
                result = Some(r);
                if failed {
                    return Err(std::io::Error::other("scoring failed"));
                }
                Ok(())
            });
            let result = match result {
                Some(Err(e)) => return Err(e.into()),
                other => other,
            };
            written.with_context(|| format!("writing {}", path.display()))?;
            result.context("scoring produced no result")??
        }
    };
    if let Some(path) = &args.record_base {
        write_record(&file, &score, &tokens, &text, path)?;
    }
    let output = match args.format {
        Format::Text => to_text(&args, &score, &tokens, &tok),
        Format::Json => pretty_json(&to_json(&args, &score, &tokens, &tok))?,
    };
    emit(None, &output)?;
    Ok(Outcome::Pass)
}

fn options<'a>(args: &ScoreArgs, logits_out: Option<&'a mut dyn Write>) -> ScoreOptions<'a> {
    ScoreOptions {
        ctx: args.ctx,
        logits_out,
        record_top_k: args.record_base.is_some().then_some(RECORD_TOP_K_DEFAULT),
    }
}

/// `--record-base`: this model's top tokens, with the text's and the model's fingerprints.
fn write_record(
    file: &GgufFile,
    score: &Score,
    tokens: &[u32],
    text: &str,
    path: &std::path::Path,
) -> Result<()> {
    let top = score.top.as_ref().context("no top tokens were kept")?;
    // The bytes that were scored (already mapped), not a second read of the path.
    let fingerprint = Fingerprint::of_bytes(file.bytes());
    let text_sha = Fingerprint::of_bytes(text.as_bytes()).hex();
    let record = BaseRecord::new(top, tokens, fingerprint.to_string(), text_sha, score.ctx);
    let mut json = serde_json::to_string(&record)?;
    json.push('\n');
    write_text(path, Overwrite::Allow, &json)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {} ({} positions, top {})",
        path.display(),
        top.log_norm.len(),
        record.top_k
    );
    Ok(())
}

/// The text around token `index` (a few tokens each side), escaped for a terminal.
fn context_of(tok: &Tokenizer, tokens: &[u32], index: usize) -> String {
    let from = index.saturating_sub(6);
    let to = (index + 3).min(tokens.len());
    let before = tok.decode(tokens.get(from..index).unwrap_or(&[]));
    let at = tok.decode(tokens.get(index..index + 1).unwrap_or(&[]));
    let after = tok.decode(tokens.get(index + 1..to).unwrap_or(&[]));
    visible(&format!("…{before}[{at}]{after}…")).into_owned()
}

fn to_text(args: &ScoreArgs, s: &Score, tokens: &[u32], tok: &Tokenizer) -> String {
    let mut out = String::new();
    let text = args
        .text
        .as_ref()
        .map_or("the bundled evaluation text".into(), |p| {
            p.display().to_string()
        });
    let _ = writeln!(
        out,
        "{}: {} tokens of {}, {} scored",
        visible(&args.model.display().to_string()),
        s.tokens,
        visible(&text),
        s.scored
    );
    let _ = writeln!(
        out,
        "perplexity {:.4} (mean NLL {:.4})",
        s.perplexity, s.mean_nll
    );
    if let Some(b) = &s.base {
        let _ = writeln!(
            out,
            "vs base: KL divergence mean {:.6}, median {:.6}, p99 {:.6}, max {:.6}",
            b.mean_kld, b.median_kld, b.p99_kld, b.max_kld
        );
        let _ = writeln!(
            out,
            "same top-1 token: {:.2}% of positions; perplexity ratio {:.4} (base {:.4})",
            100.0 * b.same_top1,
            b.perplexity_ratio,
            b.base_perplexity
        );
        for w in &b.worst {
            let _ = writeln!(
                out,
                "  KLD {:.4} at token {}: {}",
                w.kld,
                w.token,
                context_of(tok, tokens, w.token)
            );
        }
    }
    let _ = writeln!(
        out,
        "{:.2} s, {:.1} tokens/s",
        s.seconds, s.tokens_per_second
    );
    out
}

fn to_json(args: &ScoreArgs, s: &Score, tokens: &[u32], tok: &Tokenizer) -> serde_json::Value {
    let mut v = serde_json::json!({
        "version": 1,
        "model": args.model.display().to_string(),
        "text": args.text.as_ref().map(|p| p.display().to_string()),
        "score": s,
    });
    if let Some(b) = &s.base {
        v["score"]["base"]["worst"] = b
            .worst
            .iter()
            .map(|w| serde_json::json!({"token": w.token, "kld": w.kld, "context": context_of(tok, tokens, w.token)}))
            .collect();
    }
    v
}
