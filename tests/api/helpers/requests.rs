//! What a test asks of a running application: its API, its database and its bus, and the
//! waits for what they show.

use deadpool_postgres::Pool;
use kairos::bus::Pace;
use serde_json::Value;
use uuid::Uuid;

use super::{TestApp, metric, poll_until};

impl TestApp {
    /// A pool on the application's PostgreSQL database.
    ///
    /// # Panics
    /// In the standalone mode, which has none.
    pub fn pool(&self) -> &Pool {
        self.pool
            .as_ref()
            .expect("this test reads PostgreSQL: it runs in the distributed mode")
    }

    /// Publishes a raw record on `topic` of the application's own bus, as another process
    /// (or a misbehaving producer) would.
    pub async fn publish(&self, topic: &str, key: &str, payload: &[u8]) {
        self.bus
            .publish(
                topic,
                Some(key.as_bytes()),
                Some(payload),
                &[],
                Pace::Prompt,
            )
            .await
            .expect("published");
    }

    /// The one value `sql` selects from the application's PostgreSQL database.
    pub async fn query_value<T: tokio_postgres::types::FromSqlOwned>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> T {
        let client = self.pool().get().await.expect("connection");
        let row = client.query_one(sql, params).await;
        row.unwrap_or_else(|error| panic!("{sql}: {error}")).get(0)
    }

    /// `GET {path}` on the application.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the request is answered")
    }

    /// `POST` to `path` (under the API's address), with a JSON body or none.
    pub async fn post(&self, path: &str, body: Option<&Value>) -> reqwest::Response {
        let request = self.client.post(format!("{}{path}", self.address));
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        request.send().await.expect("the request is answered")
    }

    /// `POST /api/v1/jobs` with a JSON body.
    pub async fn post_job(&self, body: &Value) -> reqwest::Response {
        self.post("/api/v1/jobs", Some(body)).await
    }

    /// `POST /api/v1/jobs:batch` with a JSON body.
    pub async fn post_batch(&self, body: &Value) -> reqwest::Response {
        self.post("/api/v1/jobs:batch", Some(body)).await
    }

    /// Creates a job and returns its id; panics unless it is created.
    pub async fn create_job(&self, body: &Value) -> Uuid {
        let response = self.post_job(body).await;
        assert_eq!(response.status(), 201, "job not created");
        let body: Value = response.json().await.expect("JSON");
        body["job"]["id"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
            .expect("a job id")
    }

    /// Creates the jobs of a batch and returns their ids, in order; panics unless they are
    /// created.
    pub async fn create_batch(&self, body: &Value) -> Vec<Uuid> {
        let response = self.post_batch(body).await;
        assert_eq!(response.status(), 201, "batch not created");
        let created: Value = response.json().await.expect("JSON");
        created["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|id| {
                id.as_str()
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .expect("an id")
            })
            .collect()
    }

    /// `GET /api/v1/jobs/{id}` as JSON (`{"job": …, "attempts": […]}`).
    pub async fn job(&self, id: Uuid) -> Value {
        let response = self.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("JSON")
    }

    /// Waits until the dispatcher and the result writer each hold a partition of their topic:
    /// a fresh consumer group takes a moment to form, and a job due meanwhile would be read
    /// late.
    pub async fn wait_for_consumers(&self) {
        let holds = |text: &str, consumer: &str| {
            let name = format!("kairos_consumer_partitions{{consumer=\"{consumer}\"}}");
            metric(text, &name).is_some_and(|partitions| partitions >= 1.0)
        };
        self.wait_for_metrics("the consumers to hold a partition", |text| {
            holds(text, "dispatcher") && holds(text, "result_writer")
        })
        .await;
    }

    /// Waits until job `id` has a final status (`SUCCESS` or `FAILED`), then returns it.
    pub async fn wait_until_finished(&self, id: Uuid) -> Value {
        self.wait_for_job(id, |job| {
            matches!(job["job"]["status"].as_str(), Some("SUCCESS" | "FAILED"))
        })
        .await
    }

    /// Waits until `condition` holds for job `id`, within [`super::WAIT_LIMIT`].
    pub async fn wait_for_job(&self, id: Uuid, condition: impl Fn(&Value) -> bool) -> Value {
        poll_until(
            &format!("job {id} in the expected state"),
            || self.job(id),
            condition,
        )
        .await
    }

    /// Waits until the `/metrics` text satisfies `condition`, within [`super::WAIT_LIMIT`].
    pub async fn wait_for_metrics(&self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let read = || async { self.get("/metrics").await.text().await.expect("text") };
        poll_until(&format!("metrics showing {what}"), read, |text: &String| {
            condition(text)
        })
        .await
    }
}
