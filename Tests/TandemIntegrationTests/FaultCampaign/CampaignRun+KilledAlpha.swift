// The start the failover scenarios share: a pair in sync under the writer, alpha killed once
// 300 writes were acknowledged, and (unless `promote` is false) beta promoted by force.
extension CampaignRun {
    /// Returns the run and the writes the application saw acknowledged before the kill.
    static func alphaKilledBetaPromoted(mode: String, betaDialsThroughProxy: Bool = false,
                                        promote: Bool = true) throws -> (CampaignRun, [Int]) {
        var setup = CampaignRun.Setup()
        setup.mode = mode
        setup.betaDialsThroughProxy = betaDialsThroughProxy
        let run = try CampaignRun(setup)
        try run.enableBothInSync()
        run.startWriter(blocks: PairState.writerBlocks)
        try run.waitForAcknowledged(300)
        run.pair.alpha.crash()
        let acknowledged = run.joinWriter()
        guard promote else { return (run, acknowledged) }
        try run.pair.expectOK(try run.pair.beta.control().request(
            "failover", ["name": ReplicatedPair.resource, "force": true]))
        return (run, acknowledged)
    }
}
