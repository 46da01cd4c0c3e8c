// ResizeCheck: whether a resource may take a new size, and what carrying it out involves
// (docs/replication.md, *Resize*). Pure: the daemon measures the volume, asks this, and does
// what the plan says; the secondary answers its primary's Resize with the same verdict, so
// both nodes refuse for the same reasons in the same words.

/// Why a resize is refused; nothing has changed on either node when one is given.
public enum ResizeRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not a positive multiple of 4096.
    case notAligned(sizeBytes: UInt64)
    /// Above what the metadata and the bitmap can describe.
    case tooLarge(sizeBytes: UInt64, maxBytes: UInt64)
    /// Smaller than the resource is, and not forced.
    case shrinkNotForced(currentBytes: UInt64, sizeBytes: UInt64)
    /// The volume (a block device, or a file that could not be extended) is smaller.
    case volumeTooSmall(volumeBytes: UInt64, sizeBytes: UInt64)
    /// A resize, a role change or an enable/disable is under way.
    case busy(String)
    /// Carrying it out failed (the reason names the file and the error).
    case failed(String)
    /// The node cannot do it in its state (a secondary whose primary is connected, ...).
    case wrongState(String)

    public var description: String {
        switch self {
        case .notAligned(let size):
            return "size \(size) bytes is not a positive multiple of 4096"
        case .tooLarge(let size, let max):
            return "size \(size) bytes is above the largest this resource's metadata describes (\(max))"
        case .shrinkNotForced(let current, let size):
            return "size \(size) bytes is smaller than the resource's \(current): shrinking needs force"
        case .volumeTooSmall(let volume, let size):
            return "the volume has \(volume) bytes, fewer than \(size): grow it first"
        case .busy(let what): return "busy: \(what)"
        case .failed(let reason): return reason
        case .wrongState(let reason): return reason
        }
    }

    /// The code in a refused Resize answer (WireResize); the words are rebuilt from it and
    /// the answer's sizes, so a peer's refusal reads as a local one.
    public var wireCode: UInt16 {
        switch self {
        case .notAligned: return 1
        case .tooLarge: return 2
        case .shrinkNotForced: return 3
        case .volumeTooSmall: return 4
        case .busy: return 5
        case .failed: return 6
        case .wrongState: return 7
        }
    }

    /// The refusal a peer's answer names: `senderBytes` is its volume's bytes.
    public init(wireCode: UInt16, sizeBytes: UInt64, senderBytes: UInt64) {
        switch wireCode {
        case 1: self = .notAligned(sizeBytes: sizeBytes)
        case 2: self = .tooLarge(sizeBytes: sizeBytes, maxBytes: senderBytes)
        case 3: self = .shrinkNotForced(currentBytes: senderBytes, sizeBytes: sizeBytes)
        case 4: self = .volumeTooSmall(volumeBytes: senderBytes, sizeBytes: sizeBytes)
        case 5: self = .busy("the peer is resizing or changing roles")
        case 6: self = .failed("the peer could not write its metadata or extend its volume (its log says why)")
        default: self = .wrongState("the peer refused (code \(wireCode))")
        }
    }

    /// The bytes a refused answer carries for this refusal (see `init(wireCode:...)`).
    public var senderBytes: UInt64 {
        switch self {
        case .tooLarge(_, let max): return max
        case .shrinkNotForced(let current, _): return current
        case .volumeTooSmall(let volume, _): return volume
        default: return 0
        }
    }
}

/// What a resize involves, once allowed.
public enum ResizePlan: Equatable, Sendable {
    /// Already that size: nothing to do (a resize that crashed half way is run again).
    case unchanged
    /// Grow; `extendFileToBytes`: the volume is a file this short, extended first.
    case grow(extendFileToBytes: UInt64?)
    /// Shrink (forced): the metadata and the bitmap are cut; the volume is left as it is.
    case shrink
}

/// What the node knows when asked to resize.
public struct ResizeFacts: Equatable, Sendable {
    /// The size the resource has now (its metadata's volume size).
    public var currentBytes: UInt64
    public var sizeBytes: UInt64
    /// What the volume measures now (a device grown by the operator may be larger).
    public var volumeBytes: UInt64
    /// A regular file: a resize may extend it itself.
    public var volumeIsFile: Bool
    public var force: Bool
    public var bitmapBlockBytes: UInt32
    /// Set while something else is under way (a resize, a role change, enable/disable).
    public var busy: String?

    public init(currentBytes: UInt64, sizeBytes: UInt64, volumeBytes: UInt64, volumeIsFile: Bool, force: Bool,
                bitmapBlockBytes: UInt32, busy: String? = nil) {
        self.currentBytes = currentBytes
        self.sizeBytes = sizeBytes
        self.volumeBytes = volumeBytes
        self.volumeIsFile = volumeIsFile
        self.force = force
        self.bitmapBlockBytes = bitmapBlockBytes
        self.busy = busy
    }
}

public enum ResizeCheck {
    /// The largest size a bitmap of `blockBytes` blocks describes (u32 block numbers), and a
    /// volume may have at all.
    public static func maxBytes(bitmapBlockBytes: UInt32) -> UInt64 {
        let bitmapMax = DirtyBitmap.blockCountMax * UInt64(bitmapBlockBytes)
        return min(bitmapMax, MetadataGeometry.volumeSizeBytesMax) / 4096 * 4096
    }

    public static func decide(_ facts: ResizeFacts) -> Result<ResizePlan, ResizeRefusal> {
        if let busy = facts.busy { return .failure(.busy(busy)) }
        let size = facts.sizeBytes
        guard size > 0, size % 4096 == 0 else { return .failure(.notAligned(sizeBytes: size)) }
        let max = maxBytes(bitmapBlockBytes: facts.bitmapBlockBytes)
        guard size <= max else { return .failure(.tooLarge(sizeBytes: size, maxBytes: max)) }
        if size == facts.currentBytes { return .success(.unchanged) }
        if size < facts.currentBytes {
            guard facts.force else { return .failure(.shrinkNotForced(currentBytes: facts.currentBytes, sizeBytes: size)) }
            return .success(.shrink)
        }
        if size <= facts.volumeBytes { return .success(.grow(extendFileToBytes: nil)) }
        guard facts.volumeIsFile else { return .failure(.volumeTooSmall(volumeBytes: facts.volumeBytes, sizeBytes: size)) }
        return .success(.grow(extendFileToBytes: size))
    }
}
