//! `verify`: not available yet (its issue is in progress).

use crate::cli::VerifyOpts;
use crate::context::Context;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Context, _opts: &VerifyOpts) -> Result<u8> {
    Err(Error::Usage("`verify` is not available yet".into()))
}
