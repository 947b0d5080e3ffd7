//! The man page, `compose-secrets(1)`, from the same clap definition as `--help`
//! (`compose-secrets debug man`, `make man`).
//!
//! One self-contained page: clap_mangen renders the top level (synopsis, options, global
//! options), and each command gets its own subsection (synopsis, options, examples) instead of
//! the `compose-secrets-load(1)` references clap_mangen would make to pages nobody installs.

use std::io::Write as _;

use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

/// The page as roff.
pub fn page() -> std::io::Result<Vec<u8>> {
    let cmd = crate::cli::command().long_about(crate::cli::DESCRIPTION);
    let man = Man::new(cmd.clone());
    let mut out = Vec::new();
    // By hand: clap_mangen leaves an empty date out of `.TH`, which moves the source into the
    // date's place.
    writeln!(
        out,
        ".TH COMPOSE-SECRETS 1 \"\" \"compose-secrets {}\" \"User Commands\"",
        env!("CARGO_PKG_VERSION")
    )?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;

    let mut commands = Roff::new();
    commands.control("SH", ["COMMANDS"]);
    commands.to_writer(&mut out)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        command_section(sub, &mut out)?;
    }

    let mut tail = Roff::new();
    tail.control("SH", ["EXAMPLES"]);
    preformatted(&mut tail, crate::cli::EXAMPLES.lines().skip(1));
    tail.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in crate::error::exit::TABLE {
        tail.control("TP", []);
        tail.text([bold(code.to_string())]);
        tail.text([roman(meaning)]);
    }
    tail.control("SH", ["SEE ALSO"]);
    tail.text([
        bold("docker-compose"),
        roman("(1), "),
        bold("docker"),
        roman("(1); the README of compose-secrets."),
    ]);
    tail.to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(one_preamble(&out))
}

/// The roff crate starts every piece it renders with the same two lines defining `\*(Aq`:
/// once, at the top, is enough.
fn one_preamble(page: &[u8]) -> Vec<u8> {
    const PREAMBLE: [&str; 2] = [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];
    let text = String::from_utf8_lossy(page);
    let mut out = String::new();
    for line in PREAMBLE
        .into_iter()
        .chain(text.lines().filter(|l| !PREAMBLE.contains(l)))
    {
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// `.SS compose-secrets NAME`: what it does, its synopsis and its own options (the global
/// ones are listed once, above), then its examples.
fn command_section(sub: &clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let name = format!("compose-secrets {}", sub.get_name());
    let mut head = Roff::new();
    head.control("SS", [name.as_str()]);
    if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
        head.text([roman(about.to_string())]);
    }
    head.control("PP", []);
    head.to_writer(out)?;
    // clap_mangen renders each part under its own `.SH`; here they belong to this subsection.
    let man = Man::new(sub.clone().bin_name(&name).disable_help_flag(true));
    let mut parts = Vec::new();
    man.render_synopsis_section(&mut parts)?;
    man.render_options_section(&mut parts)?;
    for line in String::from_utf8_lossy(&parts).lines() {
        if !line.starts_with(".SH ") {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    if let Some(after) = sub.get_after_help() {
        let text = after.to_string();
        let mut lines = text.lines();
        let mut examples = Roff::new();
        examples.control("PP", []);
        examples.text([bold(lines.next().unwrap_or_default())]);
        preformatted(&mut examples, lines);
        examples.to_writer(out)?;
    }
    Ok(())
}

/// Lines kept as written (the examples' comments are aligned).
fn preformatted<'a>(roff: &mut Roff, lines: impl Iterator<Item = &'a str>) {
    roff.control("PP", []);
    roff.control("nf", []);
    for line in lines {
        roff.text([roman(line.trim_start())]);
    }
    roff.control("fi", []);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_every_command_and_exit_code() {
        let page = String::from_utf8(page().unwrap()).unwrap();
        for command in ["ensure", "load", "rotate", "verify", "completions"] {
            assert!(
                page.contains(&format!(".SS \"compose-secrets {command}\"")),
                "no section for {command}:\n{page}"
            );
        }
        assert!(
            page.contains("health\\-timeout"),
            "rotate's options are missing"
        );
        assert!(page.contains(".SH \"EXIT STATUS\""));
        assert!(!page.contains("compose\\-secrets\\-load(1)"));
    }
}
