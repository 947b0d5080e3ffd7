//! `rotate`: not available yet (its issue is in progress).

use crate::cli::RotateOpts;
use crate::context::Context;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Context, _opts: &RotateOpts) -> Result<u8> {
    Err(Error::Usage("`rotate` is not available yet".into()))
}
