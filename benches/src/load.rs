//! Loading a generated data set into a store through its one commit path.

use std::time::{Duration, Instant};

use portal_core::error::CommandError;
use portal_core::id::TenantId;
use portal_core::storage::{Storage, StorageError};

use crate::Size;
use crate::generate::{BatchKind, Counts, DataSet, Generator};

/// Why a data set could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The store failed.
    Storage(StorageError),
    /// The store refused an outcome: a data set loaded twice, or a store that disagrees with the
    /// reference store.
    Refused {
        /// The tenant of the refused outcome.
        tenant: TenantId,
        /// The refusal.
        error: CommandError,
    },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Storage(e) => write!(f, "loading the data set failed: {e}"),
            Self::Refused { tenant, error } => {
                write!(f, "the store refused an outcome of tenant {tenant}: {error}")
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Storage(e) => Some(e),
            Self::Refused { error, .. } => Some(error),
        }
    }
}

/// Generates the data set of `size` from `seed` and commits it into `storage`, one transaction
/// per command for tenant setups and one per portal (its whole history) after that. Prints its
/// progress on standard error, tagged with `label` (the backend's name), at least every ten
/// seconds.
///
/// # Errors
///
/// [`LoadError`] when the store fails or refuses an outcome; what was committed before stays.
///
/// # Panics
///
/// When the generator makes a command portal-core refuses (a bug of the generator).
pub async fn load(storage: &dyn Storage, size: Size, seed: u64, label: &str) -> Result<DataSet, LoadError> {
    load_with(storage, size, seed, label, async |_| {}).await
}

/// [`load`], calling `after_batch` with the counts so far after each batch is committed: for
/// work a store needs while it fills, such as refreshing PostgreSQL's planner statistics (a
/// connection plans its statements once, as the tables were then; planned on empty tables, the
/// lookups of a growing load turn into scans).
///
/// # Errors
///
/// As [`load`].
///
/// # Panics
///
/// As [`load`].
pub async fn load_with(
    storage: &dyn Storage,
    size: Size,
    seed: u64,
    label: &str,
    mut after_batch: impl AsyncFnMut(&Counts),
) -> Result<DataSet, LoadError> {
    let mut generator = Generator::new(size, seed);
    let spec = *generator.spec();
    eprintln!(
        "[portal-benches] {label}: loading the `{size}` data set (seed {seed}): {} tenants x {} portals x {} tasks, \
         ~{} events",
        spec.tenants, spec.portals_per_tenant, spec.tasks_per_portal, spec.events
    );
    let started = Instant::now();
    let mut last_report = Instant::now();
    while let Some(batch) = generator.next_batch() {
        for o in &batch.outcomes {
            storage
                .commit_outcome(batch.tenant, o)
                .await
                .map_err(LoadError::Storage)?
                .map_err(|error| LoadError::Refused {
                    tenant: batch.tenant,
                    error,
                })?;
        }
        after_batch(generator.counts()).await;
        let end_of_tenant =
            matches!(batch.kind, BatchKind::Portal { index, .. } if index + 1 == spec.portals_per_tenant);
        if end_of_tenant || last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let (tenant, portal) = match batch.kind {
                BatchKind::TenantSetup { index } => (index, 0),
                BatchKind::Portal { tenant, index } => (tenant, index + 1),
            };
            let c = generator.counts();
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "[portal-benches] {label}: tenant {}/{}, portal {portal}/{}: {} portals, {} events, {} commits in \
                 {secs:.1} s ({:.0} events/s)",
                tenant + 1,
                spec.tenants,
                spec.portals_per_tenant,
                c.portals,
                c.events,
                c.commits,
                c.events as f64 / secs.max(1e-9),
            );
        }
    }
    let data = generator.finish();
    eprintln!(
        "[portal-benches] {label}: loaded `{size}` in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        data.counts
    );
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use portal_core::memory::MemoryStorage;
    use portal_core::storage::{ActivityFilter, PageRequest, PortalFilter, Storage};

    use super::*;
    use crate::DEFAULT_SEED;

    #[tokio::test]
    async fn small_loads_into_the_reference_store() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let data = load(storage.as_ref(), Size::Small, DEFAULT_SEED, "memory")
            .await
            .expect("the small data set loads");
        for t in &data.tenants {
            let portals = storage
                .list_portals(t.tenant.id, PortalFilter::default(), PageRequest::first(500))
                .await
                .expect("storage");
            assert_eq!(portals.len(), t.portals.len());
            for p in &t.portals {
                let state = storage
                    .load_portal(t.tenant.id, p.id)
                    .await
                    .expect("storage")
                    .expect("the portal is there");
                assert_eq!(state.portal.status, p.status);
                assert_eq!(state.tasks.iter().filter(|t| t.is_completed()).count(), p.completed);
            }
        }
        let events: usize = {
            let mut n = 0;
            for t in &data.tenants {
                let mut after = None;
                loop {
                    let page = storage
                        .list_activity(
                            t.tenant.id,
                            &ActivityFilter::default(),
                            PageRequest { after, limit: 500 },
                        )
                        .await
                        .expect("storage");
                    n += page.len();
                    match page.last() {
                        Some(e) if page.len() == 500 => after = Some(e.id),
                        _ => break,
                    }
                }
            }
            n
        };
        assert_eq!(events as u64, data.counts.events);
        // Loading the same data twice is refused, not duplicated.
        assert!(matches!(
            load(storage.as_ref(), Size::Small, DEFAULT_SEED, "memory").await,
            Err(LoadError::Refused { .. })
        ));
    }
}
