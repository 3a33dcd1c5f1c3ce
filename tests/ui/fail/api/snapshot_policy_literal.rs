// A snapshot policy is made with `SnapshotPolicy::new`, which refuses `every: 0` (it divides):
// its fields are private, so the literal does not compile.
use eventweave_core::SnapshotPolicy;

fn main() {
    let _ = SnapshotPolicy { every: 0, version: 1 };
}
