//! Helpers for tests of programs built on fleet (feature `test-util`): states that a
//! real fleet reaches only through timing, made on purpose.

use std::path::Path;
use std::time::Duration;

use crate::config::StateDir;
use crate::error::Error;
use crate::name::InstanceName;
use crate::store::Store;

/// Makes `owner` (`host:pid:nonce`) hold the lease of `instance` in the fleet of
/// `state_dir` for `ttl`, as another process running `operation` on it would: fleet's
/// own operations on that instance then wait or are refused as busy.
pub fn hold_lease(
    state_dir: &Path,
    instance: &InstanceName,
    owner: &str,
    operation: &str,
    ttl: Duration,
) -> Result<(), Error> {
    let store = Store::open(&StateDir::new(state_dir).database())?;
    store.acquire_lease(instance, owner, operation, ttl)?;
    Ok(())
}
