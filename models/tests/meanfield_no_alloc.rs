//! The mean field's rate dynamics allocate nothing in the stepping loop after its first
//! iteration (a counting allocator; the progress callback snapshots the count).

use neurode_models::meanfield::{LifMeanField, MeanFieldParams, Param};
use neurode_solvers::integrate;
use neurode_solvers::testing::CountingAllocator;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

#[test]
fn rate_dynamics_step_without_allocating() {
    let sets: Vec<MeanFieldParams> = (0..4)
        .map(|k| {
            MeanFieldParams::new(2, |p| {
                Some(match p {
                    Param::C => vec![100.0],
                    Param::J => vec![0.3, -0.5, 0.4, -0.6],
                    Param::JExt => vec![1.0],
                    Param::CExt => vec![100.0],
                    Param::NuExt => vec![9.0 + k as f64],
                    Param::TauM => vec![0.02],
                    Param::Threshold => vec![20.0],
                    Param::Reset => vec![10.0],
                    Param::TauRef => vec![0.002],
                    _ => return None,
                })
            })
            .unwrap()
        })
        .collect();
    let field = LifMeanField::<f64>::new(sets).unwrap();
    let (mut first, mut last, mut iters) = (None, 0, 0);
    let saves: Vec<f64> = (0..=200).map(|i| i as f64 * 0.1).collect();
    integrate(&field, (0.0, 20.0))
        .rtol(1e-10)
        .atol(1e-10)
        .save_at(saves)
        .threads(1)
        .progress(|_| {
            let now = CountingAllocator::thread_allocs();
            first.get_or_insert(now);
            last = now;
            iters += 1;
        })
        .run()
        .unwrap();
    assert!(iters > 10, "{iters} iterations");
    assert_eq!(last - first.unwrap(), 0, "allocated in the loop");
}
