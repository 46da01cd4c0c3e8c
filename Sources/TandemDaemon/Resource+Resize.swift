// Online resize (docs/replication.md, *Resize*): `resize` on a primary asks its connected
// secondary first (Resize, type 28); the secondary checks its volume, grows its metadata
// durably and answers; only then does the primary grow its own. Each node then restarts its
// replicator at the new size (the primary at once, the secondary when the primary's restart
// closes the link), and the primary's next session catches up the new area, marked dirty:
// nothing says a grown device holds the same bytes on both nodes. A primary whose peer is
// away, a standalone resource and a secondary without a connected primary resize alone.
// What is allowed is TandemCore's `ResizeCheck`; this file carries it out. Loop thread only.
import Glibc
import TandemControl
import TandemCore
import TandemIO

extension Resource {
    /// `resize`: `done(nil)` once this node (and its peer, if connected) has the new size.
    func resize(toBytes size: UInt64, force: Bool, _ done: @escaping (ControlError?) -> Void) {
        if spec.role == .secondary, secondary?.isConnectedToPeer == true {
            return done(ControlError(.wrongState, "resize: this secondary is connected to its primary; "
                                     + "resize on the primary, which resizes both"))
        }
        if internalLayout != nil && size != volume.sizeBytes {
            return done(ControlError(.unsupported, "resize: \(Self.internalResizeRefusal)"))
        }
        let plan: ResizePlan
        switch checkResize(size, force: force) {
        case .failure(let refusal): return done(Self.controlError(refusal))
        case .success(let decided): plan = decided
        }
        if plan == .unchanged { return done(nil) }
        resizing = true
        guard spec.role == .primary, let primary, primary.isPeerEstablished else {
            return resizeHere(size, plan: plan, done)
        }
        guard primary.peerSupportsResize else {
            resizing = false
            return done(ControlError(.unsupported, "resize: the peer's tandemd speaks protocol \(primary.peerHelloVersion), "
                                     + "resize needs \(WireFormat.resizeVersion): upgrade it first "
                                     + "(docs/operations.md, rolling upgrade)"))
        }
        let request = WireResize(sizeBytes: size, kind: .request, force: force, senderBytes: volume.sizeBytes)
        primary.requestPeerResize(request) { [self] answer in
            switch answer {
            case .failure(let refusal):
                resizing = false
                done(Self.controlError(refusal, prefix: "resize refused by the peer"))
            case .success:
                resizeHere(size, plan: plan, done)
            }
        }
    }

    /// The pure check with what this node measures now.
    func checkResize(_ size: UInt64, force: Bool) -> Result<ResizePlan, ResizeRefusal> {
        // A peer's request to a node with internal metadata (the local one is refused above).
        if internalLayout != nil && size != volume.sizeBytes { return .failure(.wrongState(Self.internalResizeRefusal)) }
        if health.isFailed { return .failure(.wrongState("this node's disk failed")) }
        let measured: UInt64
        do throws(IOError) { measured = try volume.measureBytes() } catch {
            return .failure(.failed("\(error)"))
        }
        let busy = resizing || resizedAwaitingRestartBytes != nil ? "a resize is under way"
            : transitioning ? "a role change, enable or disable is under way" : nil
        let facts = ResizeFacts(currentBytes: volume.sizeBytes, sizeBytes: size, volumeBytes: measured,
                                volumeIsFile: !volume.isBlockDevice, force: force,
                                bitmapBlockBytes: metadata.latest.bitmapBlockBytes, busy: busy)
        return ResizeCheck.decide(facts)
    }

    /// The metadata area sits right behind the data area: moving it is not built.
    static let internalResizeRefusal = "this resource's metadata is internal (at the end of its volume) and does not "
        + "move: a resize needs external metadata (docs/metadata.md, *Internal metadata*)"

    static func controlError(_ refusal: ResizeRefusal, prefix: String = "resize") -> ControlError {
        let code: ControlErrorCode
        switch refusal {
        case .notAligned, .tooLarge, .volumeTooSmall: code = .invalidArgument
        case .shrinkNotForced: code = .unsupported
        case .busy: code = .busy
        case .failed: code = .ioError
        case .wrongState: code = .wrongState
        }
        return ControlError(code, "\(prefix): \(refusal)")
    }

    /// Stops replication, grows (or cuts) the volume's use and the metadata, restarts.
    private func resizeHere(_ size: UInt64, plan: ResizePlan, _ done: @escaping (ControlError?) -> Void) {
        transitioning = true
        let old = volume.sizeBytes
        let replicating = primary != nil || secondary != nil
        stopReplication { [self] in
            applyResize(size, plan: plan) { [self] refusal in
                transitioning = false
                resizing = false
                if refusal == nil { announceResized(from: old) }
                if replicating && enabled {
                    do throws(ControlError) { try startReplication(handedOver: false) } catch {
                        refusalError = error.message
                        logger.error("restarting replication after the resize failed", metadata: ["error": "\(error.message)"])
                    }
                }
                done(refusal.map { Self.controlError($0) })
            }
        }
    }

    /// No replicator runs: extend the file if the plan says so, write the metadata at the new
    /// size, use that much of the volume, resize the tracked bitmap (the new area dirty).
    private func applyResize(_ size: UInt64, plan: ResizePlan, _ done: @escaping (ResizeRefusal?) -> Void) {
        if case .grow(let extend?) = plan {
            do throws(IOError) { try volume.extendFile(toBytes: extend) } catch {
                return done(.failed("\(error)"))
            }
        }
        // A grown primary without a tracked bitmap must copy at its next session: its record
        // may say "clean stop", which would otherwise skip the new area. With one, the bitmap
        // (in memory) wins; after a crash there is none, and the record copies the volume.
        // A shrink adds nothing to copy: the record stays.
        let grownPrimary = spec.role == .primary && size > volume.sizeBytes
        do throws(IOError) {
            try metadata.resize(toVolumeSizeBytes: size, also: { node in
                guard grownPrimary else { return }
                var record = node.record
                record.cleanStop = 0
                record.generation = node.recordWrites + 1
                node.record = record
                node.writtenWhileDisabled = true
            }) { [self] written in
                guard written else { return done(.failed("writing \(metadata.path) failed")) }
                volume.use(bytes: size)
                if let tracked = trackedSinceStop {
                    trackedSinceStop?.bitmap = tracked.bitmap.resized(toVolumeSizeBytes: size)
                }
                if spec.sizeBytes != nil {
                    spec.sizeBytes = size
                    persist?(spec)
                }
                done(nil)
            }
        } catch {
            health.record("metadata write", errno: error.errno)
            done(.failed("\(error)"))
        }
    }

    private func announceResized(from old: UInt64) {
        logger.notice("resized", metadata: ["old_size_bytes": "\(old)", "size_bytes": "\(volume.sizeBytes)"])
        context.events.publish(resource: spec.name, "resized", [
            "old_size_bytes": .int(Int64(clamping: old)), "size_bytes": .int(Int64(clamping: volume.sizeBytes)),
        ])
    }

    // MARK: the secondary's side

    /// The primary asked (Resize): check, extend the file, write the metadata at the new size
    /// durably, then answer. The replicator restarts at that size when the link closes
    /// (`restartSecondaryIfResized`); until then the old session's frames are applied
    /// as before (none reaches past the old end).
    func peerAskedResize(_ request: WireResize, _ answer: @escaping (Result<Void, ResizeRefusal>) -> Void) {
        let plan: ResizePlan
        switch checkResize(request.sizeBytes, force: request.force) {
        case .failure(let refusal): return answer(.failure(refusal))
        case .success(let decided): plan = decided
        }
        if plan == .unchanged { return answer(.success(())) }
        if case .grow(let extend?) = plan {
            do throws(IOError) { try volume.extendFile(toBytes: extend) } catch {
                return answer(.failure(.failed("\(error)")))
            }
        }
        resizing = true
        let size = request.sizeBytes
        do throws(IOError) {
            try metadata.resize(toVolumeSizeBytes: size) { [self] written in
                resizing = false
                guard written else { return answer(.failure(.failed("writing \(metadata.path) failed"))) }
                resizedAwaitingRestartBytes = size
                answer(.success(()))
            }
        } catch {
            resizing = false
            health.record("metadata write", errno: error.errno)
            answer(.failure(.failed("\(error)")))
        }
    }

    /// The primary's link closed: if this secondary answered a Resize (the primary
    /// restarts), restart the replicator at the new size, at the next turn (not inside the
    /// replicator's own close handling).
    func restartSecondaryIfResized() {
        guard resizedAwaitingRestartBytes != nil else { return }
        context.loop.runAt(deadlineNs: 0) { [weak self] in self?.restartResizedSecondary() }
    }

    private func restartResizedSecondary() {
        guard resizedAwaitingRestartBytes != nil, !transitioning, secondary != nil else { return }
        transitioning = true
        stopReplication { [self] in
            transitioning = false
            guard enabled, spec.role == .secondary else { return }
            do throws(ControlError) { try startReplication(handedOver: false) } catch {
                refusalError = error.message
                logger.error("restarting replication after the resize failed", metadata: ["error": "\(error.message)"])
            }
        }
    }

    /// A secondary whose metadata took a new size uses it once its replicator has stopped
    /// (the old one's node was sized for the old volume): at any stop (a restart, a
    /// disable, a promotion) and before any start.
    func adoptResizedSize() {
        guard let size = resizedAwaitingRestartBytes else { return }
        precondition(secondary == nil, "a resize adopted under a running replicator")
        resizedAwaitingRestartBytes = nil
        let old = volume.sizeBytes
        volume.use(bytes: size)
        if spec.sizeBytes != nil {
            spec.sizeBytes = size
            persist?(spec)
        }
        announceResized(from: old)
    }
}
