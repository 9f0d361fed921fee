//! Leader election on a coordination.k8s.io/v1 Lease: acquire, renew, release.
//!
//! The rules follow client-go's `leaderelection` package, which controller-runtime (and so
//! Flux) uses: a lease is free when it has no holder or when its record has not changed for
//! `leaseDurationSeconds` as measured by the *local* clock since we last saw it change (so
//! clock skew between replicas does not matter); the holder renews every retry period and
//! gives up when it could not renew within the renew deadline; on shutdown it may release the
//! lease by clearing the holder and shortening the duration to one second. The decisions are
//! pure functions over lease records; [`LeaderElector`] does the apiserver calls.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

use super::Shutdown;
use crate::error::Error;

/// What to do with the lease after reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No lease exists: create it, holding it.
    Create,
    /// The lease is free or expired: take it over.
    Acquire,
    /// We hold the lease: renew it.
    Renew,
    /// Someone else holds a live lease: wait.
    Wait {
        /// The current holder.
        holder: String,
    },
}

/// The parts of a lease record whose change proves the holder is alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordKey {
    holder: Option<String>,
    renew_time: Option<String>,
    transitions: Option<i32>,
}

impl RecordKey {
    /// The key of `spec`.
    pub fn of(spec: &LeaseSpec) -> Self {
        RecordKey {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            transitions: spec.lease_transitions,
        }
    }
}

/// Remembers when the lease record last changed, by the local clock.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    last: Option<(RecordKey, Instant)>,
}

impl Observation {
    /// Records that `spec` was read at `now`; returns when its record was first seen unchanged.
    pub fn observe(&mut self, spec: &LeaseSpec, now: Instant) -> Instant {
        let key = RecordKey::of(spec);
        match &self.last {
            Some((last_key, at)) if *last_key == key => *at,
            _ => {
                self.last = Some((key, now));
                now
            }
        }
    }
}

/// Decides what to do with `lease` (None when it does not exist) for `identity`.
///
/// `observed_at` is when the current record was first seen (see [`Observation`]).
pub fn decide(
    lease: Option<&LeaseSpec>,
    identity: &str,
    observed_at: Instant,
    now: Instant,
) -> Decision {
    let Some(spec) = lease else { return Decision::Create };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Acquire;
    }
    let duration =
        Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
    if observed_at + duration <= now {
        return Decision::Acquire;
    }
    Decision::Wait { holder: holder.to_string() }
}

/// The lease record to write for `decision` (not [`Decision::Wait`]).
pub fn desired_spec(
    current: Option<&LeaseSpec>,
    identity: &str,
    lease_duration: Duration,
    decision: &Decision,
    now: jiff::Timestamp,
) -> LeaseSpec {
    let seconds = i32::try_from(lease_duration.as_secs()).unwrap_or(i32::MAX);
    let transitions = current.and_then(|c| c.lease_transitions).unwrap_or(0);
    // As client-go: every acquisition of an existing lease (even one released by ourselves)
    // counts as a transition; a renewal keeps the acquire time.
    let (acquire_time, transitions) = match decision {
        Decision::Renew => {
            (current.and_then(|c| c.acquire_time.clone()).unwrap_or(MicroTime(now)), transitions)
        }
        Decision::Create => (MicroTime(now), 0),
        Decision::Acquire | Decision::Wait { .. } => (MicroTime(now), transitions + 1),
    };
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(seconds),
        acquire_time: Some(acquire_time),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

/// The record that releases `current`: no holder, a one-second duration.
pub fn released_spec(current: &LeaseSpec, now: jiff::Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: current.lease_transitions,
        ..Default::default()
    }
}

/// Timing of leader election, from the `--leader-election-*` flags.
#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    /// How long a lease lives without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    pub renew_deadline: Duration,
    /// How often acquisition and renewal are attempted.
    pub retry_period: Duration,
    /// Whether the lease is released on shutdown.
    pub release_on_cancel: bool,
}

/// Holds or waits for one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    config: LeaderElectionConfig,
    observation: Observation,
}

impl LeaderElector {
    /// An elector for Lease `namespace/name`, as `identity` (unique per process).
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        config: LeaderElectionConfig,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            config,
            observation: Observation::default(),
        }
    }

    /// This process's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn error(&self, message: String) -> Error {
        Error::LeaderElection {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            message,
        }
    }

    /// One attempt to acquire or renew; `Ok(true)` when we hold the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let lease = self.api.get_opt(&self.name).await?;
        let now = Instant::now();
        let spec = lease.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        let observed_at = match &spec {
            Some(spec) => self.observation.observe(spec, now),
            None => now,
        };
        let decision = decide(spec.as_ref(), &self.identity, observed_at, now);
        if let Decision::Wait { holder } = &decision {
            tracing::debug!(lease = %self.name, %holder, "lease is held by another instance");
            return Ok(false);
        }
        let desired = desired_spec(
            spec.as_ref(),
            &self.identity,
            self.config.lease_duration,
            &decision,
            jiff::Timestamp::now(),
        );
        let result = match lease {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(desired),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            // The read resourceVersion stays in metadata, so a concurrent writer makes this
            // replace fail with 409 instead of being overwritten.
            Some(mut lease) => {
                lease.spec = Some(desired);
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Waits until this process holds the lease; `Ok(false)` when shutdown came first.
    ///
    /// # Errors
    /// Never for apiserver failures, which are logged and retried.
    pub async fn acquire(&mut self, shutdown: &Shutdown) -> Result<bool, Error> {
        tracing::info!(lease = %self.name, namespace = %self.namespace, identity = %self.identity,
            "attempting to acquire leader lease");
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "successfully acquired lease");
                    return Ok(true);
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(lease = %self.name,
                    error = %crate::conditions::error_message(&error), "failed to acquire lease"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.retry_period) => {}
                () = shutdown.wait() => return Ok(false),
            }
        }
    }

    /// Renews the lease until shutdown (then releases it when configured).
    ///
    /// # Errors
    /// When the lease could not be renewed within the renew deadline: leadership is lost and
    /// the process must stop reconciling.
    pub async fn hold(&mut self, shutdown: &Shutdown) -> Result<(), Error> {
        let mut last_renewal = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.retry_period) => {}
                () = shutdown.wait() => {
                    if self.config.release_on_cancel {
                        self.release().await;
                    }
                    return Ok(());
                }
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %self.name, "lease was taken by another instance")
                }
                Err(error) => tracing::warn!(lease = %self.name,
                    error = %crate::conditions::error_message(&error), "failed to renew lease"),
            }
            if last_renewal.elapsed() >= self.config.renew_deadline {
                return Err(self.error(format!(
                    "leadership lost: the lease was not renewed within {:?}",
                    self.config.renew_deadline
                )));
            }
        }
    }

    /// Releases the lease if we hold it; failures are logged.
    pub async fn release(&mut self) {
        let result = async {
            let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
            let spec = lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(());
            }
            lease.spec = Some(released_spec(&spec, jiff::Timestamp::now()));
            self.api.replace(&self.name, &PostParams::default(), &lease).await.map(|_| ())
        }
        .await;
        match result {
            Ok(()) => tracing::info!(lease = %self.name, "released leader lease"),
            Err(error) => tracing::warn!(lease = %self.name,
                error = %crate::conditions::error_message(&error), "failed to release lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_api::FakeApi;

    const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/flux-system/leases/source-controller-leader-election";

    fn fast_config() -> LeaderElectionConfig {
        LeaderElectionConfig {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(500),
            retry_period: Duration::from_millis(50),
            release_on_cancel: true,
        }
    }

    fn elector(client: &kube::Client, identity: &str) -> LeaderElector {
        LeaderElector::new(
            client.clone(),
            "flux-system",
            "source-controller-leader-election",
            identity,
            fast_config(),
        )
    }

    fn holder(fake: &FakeApi) -> serde_json::Value {
        fake.get(LEASE_PATH).unwrap()["spec"]["holderIdentity"].clone()
    }

    #[tokio::test]
    async fn electors_hand_the_lease_over_on_release() {
        let (fake, client) = FakeApi::start().await;
        let mut a = elector(&client, "a");
        let mut b = elector(&client, "b");
        let shutdown = Shutdown::new();
        assert!(a.acquire(&Shutdown::new()).await.unwrap());
        assert_eq!(holder(&fake), "a");
        assert_eq!(fake.get(LEASE_PATH).unwrap()["spec"]["leaseDurationSeconds"], 2);
        // A live lease held by someone else is left alone.
        assert!(!b.try_acquire_or_renew().await.unwrap());
        assert_eq!(holder(&fake), "a");

        let holding = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { a.hold(&shutdown).await })
        };
        let first_renew = fake.get(LEASE_PATH).unwrap()["spec"]["renewTime"].clone();
        crate::fake_api::wait_until(|| {
            fake.get(LEASE_PATH).unwrap()["spec"]["renewTime"] != first_renew
        })
        .await;
        shutdown.trigger();
        holding.await.unwrap().unwrap();
        let released = fake.get(LEASE_PATH).unwrap();
        assert!(released["spec"].get("holderIdentity").is_none(), "{released}");
        assert_eq!(released["spec"]["leaseDurationSeconds"], 1);

        assert!(b.try_acquire_or_renew().await.unwrap());
        assert_eq!(holder(&fake), "b");
        assert_eq!(fake.get(LEASE_PATH).unwrap()["spec"]["leaseTransitions"], 1);
    }

    #[tokio::test]
    async fn leadership_is_lost_when_the_lease_cannot_be_renewed() {
        let (fake, client) = FakeApi::start().await;
        let mut a = elector(&client, "a");
        assert!(a.acquire(&Shutdown::new()).await.unwrap());
        // Another instance overwrites the lease with a long one (e.g. after a network split).
        let mut lease = fake.get(LEASE_PATH).unwrap();
        lease["spec"]["holderIdentity"] = "c".into();
        lease["spec"]["leaseDurationSeconds"] = 3600.into();
        fake.insert(LEASE_PATH, lease);
        let error = a.hold(&Shutdown::new()).await.unwrap_err();
        assert!(error.to_string().contains("leadership lost"), "{error}");
        assert_eq!(holder(&fake), "c");
    }

    fn spec(holder: Option<&str>, duration: i32, renew_second: i64, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(duration),
            acquire_time: Some(MicroTime(jiff::Timestamp::from_second(0).unwrap())),
            renew_time: Some(MicroTime(jiff::Timestamp::from_second(renew_second).unwrap())),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    #[track_caller]
    fn check(lease: Option<LeaseSpec>, observed_secs_ago: u64, expected: Decision) {
        let now = Instant::now() + Duration::from_secs(1000);
        let observed_at = now - Duration::from_secs(observed_secs_ago);
        assert_eq!(decide(lease.as_ref(), "me", observed_at, now), expected);
    }

    #[test]
    fn decisions() {
        check(None, 0, Decision::Create);
        check(Some(spec(Some("me"), 35, 0, 0)), 100, Decision::Renew);
        check(Some(spec(None, 35, 0, 0)), 0, Decision::Acquire);
        check(Some(spec(Some(""), 1, 0, 0)), 0, Decision::Acquire);
        check(Some(spec(Some("other"), 35, 0, 0)), 10, Decision::Wait { holder: "other".into() });
        check(Some(spec(Some("other"), 35, 0, 0)), 34, Decision::Wait { holder: "other".into() });
        check(Some(spec(Some("other"), 35, 0, 0)), 35, Decision::Acquire);
        check(Some(spec(Some("other"), 35, 0, 0)), 90, Decision::Acquire);
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_is_measured_from_when_the_record_last_changed() {
        let mut observation = Observation::default();
        let start = Instant::now();
        let held = spec(Some("other"), 35, 100, 3);
        assert_eq!(observation.observe(&held, start), start);
        tokio::time::advance(Duration::from_secs(20)).await;
        // Unchanged record: still observed at start, not yet expired.
        let at = observation.observe(&held, Instant::now());
        assert_eq!(at, start);
        assert_eq!(
            decide(Some(&held), "me", at, Instant::now()),
            Decision::Wait { holder: "other".into() }
        );
        // The holder renews: the clock restarts.
        tokio::time::advance(Duration::from_secs(20)).await;
        let renewed = spec(Some("other"), 35, 140, 3);
        let at = observation.observe(&renewed, Instant::now());
        assert_eq!(at, Instant::now());
        tokio::time::advance(Duration::from_secs(35)).await;
        let at = observation.observe(&renewed, Instant::now());
        assert_eq!(decide(Some(&renewed), "me", at, Instant::now()), Decision::Acquire);
    }

    #[test]
    fn records_written() {
        let now = jiff::Timestamp::from_second(500).unwrap();
        let lease = Duration::from_secs(35);
        let created = desired_spec(None, "me", lease, &Decision::Create, now);
        assert_eq!(created.holder_identity.as_deref(), Some("me"));
        assert_eq!(created.lease_duration_seconds, Some(35));
        assert_eq!(created.lease_transitions, Some(0));
        assert_eq!(created.acquire_time, Some(MicroTime(now)));

        let mine = spec(Some("me"), 35, 100, 2);
        let renewed = desired_spec(Some(&mine), "me", lease, &Decision::Renew, now);
        assert_eq!(renewed.acquire_time, mine.acquire_time);
        assert_eq!(renewed.renew_time, Some(MicroTime(now)));
        assert_eq!(renewed.lease_transitions, Some(2));

        let theirs = spec(Some("other"), 35, 100, 2);
        let taken = desired_spec(Some(&theirs), "me", lease, &Decision::Acquire, now);
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));

        let released = released_spec(&renewed, now);
        assert_eq!(released.holder_identity, None);
        assert_eq!(released.lease_duration_seconds, Some(1));
        assert_eq!(released.lease_transitions, Some(2));
        let retaken = desired_spec(Some(&released), "me", lease, &Decision::Acquire, now);
        assert_eq!(retaken.lease_transitions, Some(3));
    }
}
