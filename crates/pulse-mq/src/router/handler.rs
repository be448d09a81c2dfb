//! Handlers, the context they receive, and their error type.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use pulse_core::BoxFuture;
use pulse_core::clock::Clock;
use pulse_core::mq::Message;
use pulse_core::signal::Signal;

/// The result of a handler: the messages to publish on the route's output
/// topic (often none), or why it failed.
pub type HandlerResult = Result<Vec<Message>, HandlerError>;

/// A message handler, as the router and middleware hold it.
///
/// Build one from an async closure with [`handler`].
pub type Handler = Arc<dyn Fn(Message, Context) -> BoxFuture<'static, HandlerResult> + Send + Sync>;

/// Wraps a handler into another, as retry, timeout and deduplication do.
pub type Middleware = Arc<dyn Fn(Handler) -> Handler + Send + Sync>;

/// Turns an async closure into a [`Handler`].
///
/// # Examples
///
/// ```
/// use pulse_mq::router::{handler, Handler};
///
/// let echo: Handler = handler(|message, _context| async move { Ok(vec![message]) });
/// # drop(echo);
/// ```
pub fn handler<F, Fut>(function: F) -> Handler
where
    F: Fn(Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    Arc::new(move |message, context| Box::pin(function(message, context)))
}

/// The details of the delivery a handler is handling.
#[derive(Clone, Debug)]
pub struct Context {
    pub(crate) handler: Arc<str>,
    pub(crate) topic: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stop: Signal,
}

impl Context {
    /// Creates a context, for calling a handler or middleware outside a
    /// router (in a unit test, for instance).
    pub fn new(handler: &str, topic: &str, attempt: u32, clock: Arc<dyn Clock>) -> Self {
        Context {
            handler: Arc::from(handler),
            topic: Arc::from(topic),
            attempt,
            clock,
            stop: Signal::new(),
        }
    }

    /// Returns the handler's name.
    pub fn handler(&self) -> &str {
        &self.handler
    }

    /// Returns the topic the message was consumed from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Returns the delivery attempt, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Returns the router's clock, which middleware uses for every wait.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Returns the signal that fires when the router shuts down; long waits
    /// (retry backoff, throttling) end early when it fires.
    pub fn stop_signal(&self) -> &Signal {
        &self.stop
    }
}

/// The broad reason a handler failed, which decides what the router does
/// next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandlerErrorKind {
    /// An ordinary failure: retried, then redelivered, then dead-lettered.
    Failed,
    /// A failure that retrying cannot fix (a payload that does not decode):
    /// dead-lettered at once where the route has a dead-letter topic.
    Permanent,
    /// The handler panicked; the panic was caught.
    Panicked,
    /// The handler did not finish within its timeout.
    TimedOut,
}

/// Why a handler failed.
///
/// Any error type converts into it with `?`, as into `anyhow::Error`; it
/// therefore does not implement `std::error::Error` itself.
///
/// # Examples
///
/// ```
/// use pulse_mq::router::{HandlerError, HandlerErrorKind};
///
/// let err = HandlerError::permanent("payload is not an order");
/// assert_eq!(err.kind(), HandlerErrorKind::Permanent);
/// assert_eq!(err.to_string(), "payload is not an order");
/// ```
pub struct HandlerError {
    kind: HandlerErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl HandlerError {
    /// Creates an ordinary failure with a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        HandlerError::with_kind(HandlerErrorKind::Failed, message)
    }

    /// Creates a failure that retrying cannot fix.
    pub fn permanent(message: impl fmt::Display) -> Self {
        HandlerError::with_kind(HandlerErrorKind::Permanent, message)
    }

    /// Creates an error of the given kind.
    pub fn with_kind(kind: HandlerErrorKind, message: impl fmt::Display) -> Self {
        HandlerError {
            kind,
            message: message.to_string(),
            source: None,
        }
    }

    /// Returns the kind.
    pub fn kind(&self) -> HandlerErrorKind {
        self.kind
    }

    /// Returns whether retrying may help.
    pub fn is_retryable(&self) -> bool {
        self.kind != HandlerErrorKind::Permanent
    }

    /// Returns the underlying error, when the failure came from one.
    pub fn source(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for HandlerError {
    fn from(err: E) -> Self {
        HandlerError {
            kind: HandlerErrorKind::Failed,
            message: err.to_string(),
            source: Some(Box::new(err)),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}
