//! What the allocator (jemalloc, `src/main.rs`) says of the heap, read at scrape time: the
//! bytes live objects take, and the bytes it keeps resident for them (its metadata, and freed
//! pages not yet given back). Their difference, against `process_resident_memory_bytes`, tells
//! a growing heap from fragmentation and from the binary's own pages.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// `epic_operator_heap_allocated_bytes` and `epic_operator_heap_resident_bytes`. Nothing when
/// jemalloc cannot be read.
#[derive(Debug)]
pub struct HeapCollector;

/// One reading: (allocated, resident) bytes, after advancing jemalloc's statistics epoch.
pub fn read() -> Option<(u64, u64)> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    let allocated = tikv_jemalloc_ctl::stats::allocated::read().ok()?;
    let resident = tikv_jemalloc_ctl::stats::resident::read().ok()?;
    Some((allocated as u64, resident as u64))
}

impl Collector for HeapCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((allocated, resident)) = read() else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "epic_operator_heap_allocated_bytes",
                "Bytes the allocator holds for live objects.",
                allocated,
            ),
            (
                "epic_operator_heap_resident_bytes",
                "Bytes of memory the allocator keeps resident: live objects, its metadata and freed pages not yet returned.",
                resident,
            ),
        ] {
            let g = ConstGauge::new(value as f64);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_allocator_can_be_read() {
        // Tests run on the system allocator, so jemalloc's figures are its own (small), but
        // they are there and consistent.
        let (allocated, resident) = super::read().expect("jemalloc statistics");
        assert!(resident >= allocated);
    }
}
