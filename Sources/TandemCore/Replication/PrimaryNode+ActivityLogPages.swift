// PrimaryNode's bitmap pages for the activity log (PrimaryNode+ActivityLog explains the
// rule; docs/metadata.md, *Activity-log transaction*): out of sync, an extent leaves the log
// only once the bitmap pages covering it are durable, and bits set without a write reach the
// disk (every page with a set bit, once) before a transaction says the pages count. The driver encodes the
// pages when it writes them (`.persistBitmapPages`) and answers `.bitmapPagesPersisted`.

extension PrimaryNode {
    /// Asks for the pages evictions need and, when pages could count but do not cover the bits
    /// set without a write, for every page holding a set bit. In sync no page matters (no bit is set, no copy
    /// chunk is unconfirmed): requests are answered at once, as with a full copy.
    mutating func activityLogPersistPages(_ mode: ActivityLogMode, into actions: inout [PrimaryNodeAction]) {
        let pagesMatter = mode == .pages || (mode == .none && activityLogPagesMayCount)
        let fault = config.activityLog?.testingFault == .evictsBeforePagesPersisted
        var requests: [ActivityLog.PageRequest] = []
        while let request = activityLog!.nextPageToPersist() {
            if pagesMatter && !fault {
                requests.append(request)
            } else {
                activityLog!.bitmapPagePersisted(request)
            }
        }
        if !requests.isEmpty {
            var pages: [Int] = []
            for request in requests where !pages.contains(request.page) { pages.append(request.page) }
            _ = requestPageWrite(pages, requests: requests, alsoSet: activityLogHeldRuns(pages), into: &actions)
        }
        let covers = gate.bitsWithoutWrite
        guard enabled, mode == .none, activityLogPagesMayCount, gate.pagesCoverThrough != covers,
            !gate.pageWrites.contains(where: { $0.covers == covers })
        else { return }
        // Only pages with a set bit (or an unconfirmed copy chunk) can hold a stale clear bit.
        let held = activityLogHeldRuns(nil)
        var pages: [Int] = []
        for page in 0..<bitmap.pageCount {
            let first = UInt64(page) * DirtyBitmap.bitsPerPage
            let run = BlockRun(first: first, count: min(DirtyBitmap.bitsPerPage, bitmap.blockCount - first))
            if bitmap.setCount(in: run) > 0 || held.contains(where: { $0.first < run.end && $0.end > run.first }) {
                pages.append(page)
            }
        }
        guard !pages.isEmpty else { return gate.pagesCoverThrough = covers }
        _ = requestPageWrite(pages, covers: covers, alsoSet: held, into: &actions)
    }

    /// Asks the driver to write `pages` (the node's bitmap with `alsoSet` set too) durably;
    /// returns the write's ticket, which `.bitmapPagesPersisted` answers.
    mutating func requestPageWrite(_ pages: [Int], requests: [ActivityLog.PageRequest] = [], covers: UInt64? = nil,
                                   alsoSet: [BlockRun], into actions: inout [PrimaryNodeAction]) -> UInt64 {
        gate.pageTicket += 1
        gate.pageWrites.append(PageWrite(ticket: gate.pageTicket, requests: requests, covers: covers))
        actions.append(.persistBitmapPages(ticket: gate.pageTicket, pages: pages, alsoSet: alsoSet))
        return gate.pageTicket
    }

    /// Whether the page write of `ticket` (0: none) has not been answered yet.
    func pageWriteInFlight(_ ticket: UInt64) -> Bool {
        ticket != 0 && gate.pageWrites.contains(where: { $0.ticket == ticket })
    }

    /// The blocks of every write the peer has not confirmed durable that fall in `pages` (nil:
    /// all): a copy chunk's bits are cleared when it is read, so the pages must mark it until
    /// the peer holds it. Application writes among them are harmless extra bits.
    func activityLogHeldRuns(_ pages: [Int]?) -> [BlockRun] {
        var runs: [BlockRun] = []
        let bitmap = self.bitmap
        primary.forEachHeldWrite { offset, length in
            guard length > 0, offset < bitmap.volumeSizeBytes else { return }
            let run = bitmap.blocksTouched(offsetBytes: offset, lengthBytes: min(UInt64(length), bitmap.volumeSizeBytes - offset))
            if let pages {
                let inPage = pages.contains { page in
                    let first = UInt64(page) * DirtyBitmap.bitsPerPage
                    return run.first < first + DirtyBitmap.bitsPerPage && run.end > first
                }
                guard inPage else { return }
            }
            runs.append(run)
        }
        return runs
    }

    /// The driver wrote the pages of `ticket` durably (errno 0) or failed to.
    mutating func bitmapPagesPersisted(_ ticket: UInt64, errno: Int32, nowNs: UInt64,
                                       into actions: inout [PrimaryNodeAction]) {
        guard activityLog != nil, let index = gate.pageWrites.firstIndex(where: { $0.ticket == ticket }) else {
            preconditionFailure("a bitmap page result nobody asked for")
        }
        let write = gate.pageWrites.remove(at: index)
        guard errno == 0 else { return activityLogFailed("bitmap page write", errno, nowNs: nowNs, into: &actions) }
        for request in write.requests { activityLog!.bitmapPagePersisted(request) }
        if let covers = write.covers, covers &- gate.pagesCoverThrough < 1 << 63 { gate.pagesCoverThrough = covers }
    }
}
