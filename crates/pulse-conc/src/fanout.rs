//! Fan-out/fan-in: map a stream or an iterator through an async function
//! with bounded concurrency, yielding results in input order or as they
//! finish.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::task::JoinSet;

use crate::error::Error;

/// The order in which a [`FanOut`] yields results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// In input order; a slow item holds back later results, which count
    /// against the limit while they wait.
    Ordered,
    /// As they finish.
    Unordered,
}

pin_project_lite::pin_project! {
    /// A stream of `f(item)` for each input item, with at most `limit` calls
    /// running or waiting to be yielded at once. Each call runs as a tokio
    /// task, so calls run in parallel on a multi-thread runtime.
    ///
    /// A panicking call resumes its panic in the task that polls the stream.
    /// Dropping the stream aborts the calls still running.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use pulse_conc::fanout::{self, Order};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap().block_on(async {
    /// let squares = fanout::map(fanout::iter(1..=5u64), 3, Order::Ordered, |n| async move { n * n })
    ///     .unwrap()
    ///     .collect::<Vec<_>>()
    ///     .await;
    /// assert_eq!(squares, [1, 4, 9, 16, 25]);
    /// # });
    /// ```
    pub struct FanOut<S, F, T> {
        #[pin]
        input: S,
        input_done: bool,
        call: F,
        tasks: JoinSet<(usize, T)>,
        next_index: usize,
        next_to_yield: usize,
        finished: BTreeMap<usize, T>,
        limit: usize,
        order: Order,
    }
}

impl<S, F, T> fmt::Debug for FanOut<S, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOut")
            .field("running", &self.tasks.len())
            .field("limit", &self.limit)
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

/// Maps `input` through `call`, at most `limit` at a time.
///
/// # Errors
///
/// [`Error::InvalidConfig`] when `limit` is zero.
pub fn map<S, F, Fut>(
    input: S,
    limit: usize,
    order: Order,
    call: F,
) -> Result<FanOut<S, F, Fut::Output>, Error>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    if limit == 0 {
        return Err(Error::config(
            "fan-out limit",
            0,
            "allow at least 1 call at a time",
        ));
    }
    Ok(FanOut {
        input,
        input_done: false,
        call,
        tasks: JoinSet::new(),
        next_index: 0,
        next_to_yield: 0,
        finished: BTreeMap::new(),
        limit,
        order,
    })
}

/// Turns an iterator into a stream for [`map`].
pub fn iter<I: IntoIterator>(items: I) -> Iter<I::IntoIter> {
    Iter {
        items: items.into_iter(),
    }
}

/// A stream over an iterator's items, from [`iter`].
#[derive(Debug)]
pub struct Iter<I> {
    items: I,
}

impl<I: Iterator + Unpin> Stream for Iter<I> {
    type Item = I::Item;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.items.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl<S, F, Fut> Stream for FanOut<S, F, Fut::Output>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Item = Fut::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(value) = this.finished.remove(this.next_to_yield) {
                *this.next_to_yield += 1;
                return Poll::Ready(Some(value));
            }

            // Start calls while the limit allows; results held back for
            // ordering count against it so that memory stays bounded.
            while !*this.input_done && this.tasks.len() + this.finished.len() < *this.limit {
                match this.input.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        let index = *this.next_index;
                        *this.next_index += 1;
                        let future = (this.call)(item);
                        this.tasks.spawn(async move { (index, future.await) });
                    }
                    Poll::Ready(None) => *this.input_done = true,
                    Poll::Pending => break,
                }
            }

            match this.tasks.poll_join_next(cx) {
                Poll::Ready(Some(Ok((index, value)))) => match this.order {
                    Order::Unordered => return Poll::Ready(Some(value)),
                    Order::Ordered => {
                        this.finished.insert(index, value);
                    }
                },
                Poll::Ready(Some(Err(err))) => {
                    if err.is_panic() {
                        std::panic::resume_unwind(err.into_panic());
                    }

                    // Only a runtime shutting down aborts these tasks.
                    return Poll::Ready(None);
                }
                Poll::Ready(None) if *this.input_done => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}
