//! Live pages: `GET /events` is a server-sent event stream that says `change` whenever
//! the master's change stream moved (a request, a report, a publication, an application's
//! change, here or on a master sharing the store). It carries no data: the page fetches
//! itself again, as its user, and replaces its live parts (`console.js`), so nothing is
//! shown that the page would not show.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use grove_store::Store;

use super::{Shared, Viewer};

/// Changes closer together than this make one event: a busy cloud does not make every
/// open page render many times a second.
const SETTLE: Duration = Duration::from_millis(500);

pub(crate) async fn events<S: Store>(
    State(console): Shared<S>,
    _viewer: Viewer,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = console.master.changes.follow();
    let closing = console.master.closing.subscribe();
    let stream = futures_util::stream::unfold(
        (changes, closing, Arc::clone(&console)),
        |(mut changes, mut closing, console)| async move {
            if *closing.borrow() {
                return None;
            }
            tokio::select! {
                changed = changes.changed() => changed.ok()?,
                _ = closing.changed() => return None,
            }
            tokio::time::sleep(SETTLE).await;
            let generation = *changes.borrow_and_update();
            let event = Event::default()
                .event("change")
                .data(generation.to_string());
            Some((Ok(event), (changes, closing, console)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
