/// Tells the intake each time a task finishes; its governor sizes adaptive prefetch from the worker's pace
/// (``Worker/AdaptivePrefetch``). Installed only when prefetch is adaptive.
struct PrefetchMiddleware: TaskMiddleware {
    let intake: DeliveryIntake

    func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async {
        await intake.taskFinished()
    }
}
