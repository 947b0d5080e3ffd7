//! Process hardening done first thing: no core dumps, no ptrace by peers, no panic payloads.

/// Disable core dumps and make the process non-dumpable, so a crash or a peer
/// process of the same user cannot read secret values out of memory.
pub fn harden_process() {
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    let _ = nix::sys::prctl::set_dumpable(false);
    // A panic message could hold any string the code had in hand; print only where it happened.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map_or_else(
            || "unknown location".to_string(),
            |l| format!("{}:{}", l.file(), l.line()),
        );
        eprintln!("compose-secrets: internal error at {location} (message withheld: it may contain data); please report it");
    }));
}

/// The hardening in effect, for `compose-secrets debug hardening` and the tests.
pub fn report() -> serde_json::Value {
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE)
        .unwrap_or((u64::MAX, u64::MAX));
    serde_json::json!({
        "core_limit_soft": soft,
        "core_limit_hard": hard,
        "dumpable": nix::sys::prctl::get_dumpable().unwrap_or(true),
    })
}
