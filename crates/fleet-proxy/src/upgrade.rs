//! Upgraded connections (WebSocket and any other `Upgrade`): bytes copied both ways
//! until either side closes, the backend's drain times out, or the listener is forced
//! closed.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::backend::Upgraded;
use crate::server::Phase;
use crate::track::Tracked;

pub(crate) fn spawn_tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    upgraded: Upgraded,
    tracked: Tracked,
    mut phase: watch::Receiver<Phase>,
) {
    tokio::spawn(async move {
        let backend = upgraded.backend().addr;
        let mut closing = upgraded.backend().upgraded_closing();
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%backend, %error, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(error) = result {
                    tracing::debug!(%backend, %error, "upgraded connection ended");
                }
            }
            _ = closing.wait_for(|closing| *closing) => {
                tracing::debug!(%backend, "upgraded connection closed: the drain timed out");
            }
            _ = phase.wait_for(|phase| *phase == Phase::Closing) => {
                tracing::debug!(%backend, "upgraded connection closed: the listener closed");
            }
        }
        // Sockets first: once the counts reach zero, nothing of the tunnel is left.
        drop(client);
        drop(upstream);
        drop(upgraded);
        drop(tracked);
    });
}
