//! Whether a write may have taken effect more often than its answers say.
//!
//! A write whose attempt ends without an answer (a timeout, a dropped connection) or with a 5xx
//! may have been applied all the same, and the SDK sends it again. For a conditional write the
//! retry then fails its condition on the first attempt's own change; for an `ADD` it applies
//! twice. A [`Doubt`] attached to one call (`.customize().interceptor(doubt.clone())`) is
//! raised by such an attempt, so the caller can tell those outcomes from plain ones.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

/// Raised when an attempt of the call it is attached to may have been applied unanswered.
#[derive(Debug, Clone, Default)]
pub struct Doubt(Arc<AtomicBool>);

impl Doubt {
    /// Whether some attempt ended without a clear answer.
    pub fn raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for Doubt {
    fn name(&self) -> &'static str {
        "Doubt"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let failed = matches!(context.output_or_error(), Some(Err(_)));
        // A 4xx is a clear refusal (throttled, condition failed, denied): nothing was applied.
        let refused = context.response().is_some_and(|r| r.status().as_u16() < 500);
        if failed && !refused {
            self.0.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}
