//! The `http` kind: each attempt sends the job's request and waits for the answer.
//!
//! Every request carries `Idempotency-Key: <job id>` (the same on every retry, so that the
//! receiver can deduplicate), `Kairos-Job-Id`, `Kairos-Attempt` and `Kairos-Scheduled-At`,
//! and, with `runner.http.signing_secret` set, `Kairos-Signature: t=<unix seconds>,v1=<hex>`:
//! an HMAC-SHA256, keyed with the secret, of `"<t>.<body>"` (the scheme of Stripe's webhooks).
//!
//! An answer within the job's `success_status` succeeds. Connection errors, timeouts, `5xx`
//! and `429` fail the attempt and are retried (after the `Retry-After` the answer gives, up to
//! the backoff's cap); any other status fails the job at once. The attempt records the
//! status (as its `exit_code`), the start of the answer's body (`runner.http.max_response_bytes`)
//! and its duration.
//!
//! At most `runner.http.max_concurrent_calls` calls run at once in a process, apart from the
//! commands' slots (see [`super::slots`]). The calls run on threads of their own (one per core, up to [`MAX_CALL_THREADS`]), not on
//! the executors' thread: the client's work per call (its connections, TLS, the request and
//! the answer) is most of an `http` job's, and the executors' thread keeps its timers and
//! dispatches while calls are under way (docs/performance.md, W8).

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use sha2::Sha256;

use super::{AttemptContext, RunResult, Runner, Slot};
use crate::config::HttpRunnerSettings;
use crate::domain::{AttemptOutcome, HttpSpec, Payload};

/// The most threads the calls of `http` jobs run on.
pub const MAX_CALL_THREADS: usize = 4;

/// Runs `http` jobs with one client, whose connections are reused across jobs.
#[derive(Debug)]
pub struct HttpRunner {
    client: reqwest::Client,
    settings: HttpRunnerSettings,
    calls: CallThreads,
}

/// The runtime the calls run on. Let go without waiting for its threads: the runner may be
/// dropped on a thread that must not block.
#[derive(Debug)]
struct CallThreads(Option<tokio::runtime::Runtime>);

impl CallThreads {
    fn start() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(MAX_CALL_THREADS);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("kairos-http")
            .enable_all()
            .build()
            .map(|runtime| Self(Some(runtime)))
    }

    fn spawn<F>(&self, call: F) -> Call<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self
            .0
            .as_ref()
            .expect("the runtime lives as long as the runner");
        Call(runtime.spawn(call))
    }
}

impl Drop for CallThreads {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A call running on [`CallThreads`]; dropping it (the attempt was cancelled, or its executor
/// let go of it) stops the call.
struct Call<T>(tokio::task::JoinHandle<T>);

impl<T> Future for Call<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for Call<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl HttpRunner {
    /// A runner calling the hosts `settings` allow.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (its TLS roots cannot be read), or its threads
    /// cannot start.
    pub fn new(settings: &HttpRunnerSettings) -> Result<Self, super::RunnerError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("kairos/", env!("CARGO_PKG_VERSION")))
            // A job names where it calls: a redirect elsewhere is its answer, not followed.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            client,
            settings: settings.clone(),
            calls: CallThreads::start().map_err(super::RunnerError::Threads)?,
        })
    }
}

/// Whether `url` may be called under `allowed` (`host` or `host:port`; empty: any host).
pub fn host_allowed(url: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Ok(url) = Url::parse(url) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let port = url.port_or_known_default().unwrap_or_default();
    allowed.iter().any(|entry| {
        entry.eq_ignore_ascii_case(host) || entry.eq_ignore_ascii_case(&format!("{host}:{port}"))
    })
}

/// The `Kairos-Signature` of `body` sent at `timestamp` (Unix seconds) under `secret`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

#[async_trait::async_trait]
impl Runner for HttpRunner {
    type Spec = HttpSpec;

    fn slot(&self) -> Slot {
        Slot::Call
    }

    async fn run(&self, spec: &HttpSpec, attempt: &AttemptContext) -> RunResult {
        if !host_allowed(&spec.url, &self.settings.allowed_hosts) {
            return RunResult::not_retried(format!(
                "{} is not among the hosts runner.http.allowed_hosts allows",
                spec.url
            ));
        }
        let request = match self.request(spec, attempt) {
            Ok(request) => request,
            Err(problem) => return RunResult::not_retried(problem),
        };
        let client = self.client.clone();
        let (limit, success) = (self.settings.max_response_bytes, spec.success_status);
        let timeout = attempt.timeout;
        let call = self.calls.spawn(async move {
            tokio::time::timeout(timeout, exchange(&client, request, success, limit)).await
        });
        let answer = tokio::select! {
            answer = call => answer,
            () = attempt.cancelled() => return RunResult::cancelled(),
        };
        match answer {
            Ok(Ok(result)) => result,
            Err(error) => RunResult::failed(format!("the call stopped: {error}")),
            Ok(Err(_)) => RunResult {
                outcome: AttemptOutcome::TimedOut,
                ..RunResult::failed(format!(
                    "timed out after {} s",
                    attempt.timeout.as_secs_f64()
                ))
            },
        }
    }
}

impl HttpRunner {
    /// The job's request, with Kairos's headers and, when a secret is set, its signature.
    fn request(
        &self,
        spec: &HttpSpec,
        attempt: &AttemptContext,
    ) -> Result<reqwest::Request, String> {
        let method = Method::from_bytes(spec.method.as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", spec.method))?;
        let url = Url::parse(&spec.url).map_err(|error| format!("{}: {error}", spec.url))?;
        let mut request = reqwest::Request::new(method, url);
        let headers = request.headers_mut();
        for (name, value) in &spec.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a header name"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of `{name}` is not a header value"))?;
            headers.insert(name, value);
        }
        let job_id = attempt.job_id.to_string();
        for (name, value) in [
            ("idempotency-key", job_id.clone()),
            ("kairos-job-id", job_id),
            ("kairos-attempt", attempt.attempt.to_string()),
            ("kairos-scheduled-at", attempt.scheduled_at.to_rfc3339()),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).map_err(|error| error.to_string())?,
            );
        }
        let body = match &spec.body {
            None => Vec::new(),
            Some(payload) => {
                if matches!(payload, Payload::Json(_)) && !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                payload.to_bytes().0
            }
        };
        if let Some(secret) = &self.settings.signing_secret {
            let signed = signature(secret.as_bytes(), chrono::Utc::now().timestamp(), &body);
            headers.insert(
                HeaderName::from_static("kairos-signature"),
                HeaderValue::from_str(&signed).map_err(|error| error.to_string())?,
            );
        }
        if spec.body.is_some() {
            *request.body_mut() = Some(body.into());
        }
        Ok(request)
    }
}

/// Sends `request` and reads the answer's status and the start of its body (`limit` bytes),
/// judged by `success_status`.
async fn exchange(
    client: &reqwest::Client,
    request: reqwest::Request,
    success_status: [u16; 2],
    limit: usize,
) -> RunResult {
    let mut response = match client.execute(request).await {
        Ok(response) => response,
        Err(error) => return RunResult::failed(format!("the request failed: {error}")),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(retry_after);
    let mut body = Vec::new();
    let mut cut = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit.saturating_sub(body.len());
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    cut = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) => {
                return RunResult::failed(format!("the answer's body broke off: {error}"));
            }
        }
    }
    let mut stdout = String::from_utf8_lossy(&body).into_owned();
    if cut {
        stdout.push_str(&format!("\n[kept the first {limit} bytes of the answer]"));
    }
    let [low, high] = success_status;
    let mut result = if (low..=high).contains(&status) {
        RunResult::succeeded()
    } else if status >= 500 || status == 429 {
        RunResult {
            retry_after,
            ..RunResult::failed(format!("HTTP {status}; retried"))
        }
    } else {
        RunResult::not_retried(format!(
            "HTTP {status} is outside success_status [{low}, {high}]; not retried"
        ))
    };
    result.exit_code = Some(i32::from(status));
    result.stdout = stdout;
    result
}

/// A `Retry-After` value: seconds, or an HTTP date (a date past is no wait).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_stripes_scheme() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed independently with openssl:
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature(b"secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let wait = retry_after(&later).expect("a wait");
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn hosts_are_allowed_by_name_or_name_and_port() {
        let allowed = vec!["hooks.example.com".to_owned(), "127.0.0.1:9000".to_owned()];
        assert!(host_allowed("https://hooks.example.com/x", &allowed));
        assert!(host_allowed("http://127.0.0.1:9000/", &allowed));
        assert!(!host_allowed("http://127.0.0.1:9001/", &allowed));
        assert!(!host_allowed("http://evil.example.com/", &allowed));
        assert!(host_allowed("http://anything/", &[]));
    }
}
