import TandemCore

// Simulation+Partition: asymmetric partitions and promotion races.
//
// An asymmetric partition cuts the connection both ways (nothing sent on it arrives any
// more, nothing in flight is delivered), but only one side learns it at once (a reset or an
// error reached it); the other goes on as if connected, sending into the void, until its
// link liveness (TandemCore's LinkLiveness, checked on every tick as the daemon's link owner
// does, with the scenario's `ping_interval_ms` and `ping_timeout_ms`) declares the peer
// dead. Until then the cut connection is still that side's, so a dial from the side that saw
// the cut fails (the partition lasts until both sides have seen it).
//
// Stale claims. What the unaware side says about the pair is what it last heard, so for up
// to its liveness timeout it can be false, and the checker does not check it: a secondary
// keeps saying UpToDate while the primary, which saw the cut, acknowledges writes alone (sync
// without fencing, or `fencing: dont-care`); a primary keeps saying its peer is UpToDate
// while that peer lost power behind the cut. The first runs of this class found exactly
// these (seeds 662, 2229, 2799 of the default set); a disk state is only as fresh as the
// link's liveness (docs/replication.md, *Asymmetric partitions*). Once the side times the
// link out, its claims are checked again. `staleClaimChecksSkipped` counts the checks skipped.
//
// A promotion race is a forced failover while the connection is half up (the old primary
// still writing, its secondary cut off but not yet told, or the reverse), sometimes followed
// by a second forced failover a little later (two promotions in a row). Whether a promotion
// is allowed is ResourceRoles' decision, as in production; what it leads to is the forced
// failover's path (Simulation.forcedFailover, Simulation+Generations).

/// The liveness of the side of a cut connection that has not seen the cut.
struct UnawareSide {
    var primary: Bool
    var liveness: LinkLiveness
}

extension Simulation {
    /// The connection up now is cut both ways; `primarySees`: the primary learns it now, the
    /// secondary at its liveness timeout (else the reverse).
    func cutAsymmetrically(primarySees: Bool) {
        guard var cut = link, !cut.impostor, cut.unaware == nil, let primaryIndex = cut.primary,
            nodes[primaryIndex].alive, nodes[cut.secondary].alive, let config = scenario.liveness
        else { return }
        partitionsCut += 1
        var liveness = LinkLiveness(config: config, nowNs: nowNs)
        liveness.established(nowNs: nowNs)
        cut.unaware = UnawareSide(primary: !primarySees, liveness: liveness)
        link = cut
        trace("link \(cut.id) cut: \(primarySees ? nodes[primaryIndex].name : nodes[cut.secondary].name) sees it, the other does not")
        if primarySees {
            if let primary = nodes[primaryIndex].primary { primaryLinkDown(nodes[primaryIndex], primary, reason: "the peer is unreachable") }
        } else {
            secondaryLinkDown(nodes[cut.secondary])
        }
        // A promotion race: the operator forces a failover while the link is half up (the
        // old primary may still be writing), sometimes twice in a row.
        if partitionRandom.chance(perMille: scenario.promotionRacePerMille) {
            events.schedule(.fault(.forcedFailover(allowInconsistent: false)), atNs: nowNs + partitionRandom.between(1, 2_000_000))
            if partitionRandom.chance(perMille: 500) {
                events.schedule(.fault(.forcedFailover(allowInconsistent: false)), atNs: nowNs + partitionRandom.between(2_000_000, 6_000_000))
            }
        }
    }

    /// The node is the side of a cut connection that saw the cut: to it, the link is gone.
    func isAwareSideOfCut(_ node: SimNode) -> Bool {
        guard let cut = link, let unaware = cut.unaware else { return false }
        return unaware.primary ? cut.secondary == node.index : cut.primary == node.index
    }

    /// The node is the side of a cut connection that has not seen the cut yet: what it says
    /// about the pair is stale (see the file header) and is counted, not checked.
    func isUnawareSideOfCut(_ node: SimNode) -> Bool {
        guard let cut = link, let unaware = cut.unaware else { return false }
        let unawareSide = unaware.primary ? cut.primary == node.index : cut.secondary == node.index
        if unawareSide { staleClaimChecksSkipped += 1 }
        return unawareSide
    }

    /// The primary holds the connection up now (as it sees it).
    func primaryConnected(_ node: SimNode) -> Bool {
        link?.primary == node.index && !isAwareSideOfCut(node)
    }

    /// On every tick: the unaware side of a cut connection checks its liveness as the daemon
    /// does (nothing arrives on a cut link); declared dead, the connection is gone for both.
    func checkCutLiveness() {
        guard var cut = link, var unaware = cut.unaware, scenario.testingFault != .livenessNeverChecked else { return }
        let verdict = unaware.liveness.check(nowNs: nowNs, heard: false)
        cut.unaware = unaware
        link = cut
        guard case let .dead(reason) = verdict else { return }
        partitionTimeouts += 1
        let name = unaware.primary ? cut.primary.map { nodes[$0].name } ?? "?" : nodes[cut.secondary].name
        disconnect("\(name)'s link liveness: \(reason)")
    }
}
