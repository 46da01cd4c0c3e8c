// ProcessMetrics: the standard `process_*` metrics every Prometheus client library exports,
// read from /proc/self at scrape time on the HTTP thread (a few small file reads).
import Glibc

public struct ProcessMetrics: Sendable, Equatable {
    public var cpuSeconds: Double
    public var residentBytes: UInt64
    public var virtualBytes: UInt64
    public var startTimeSeconds: Double
    public var openFDs: UInt64
    public var maxFDs: UInt64

    /// nil when /proc cannot be read (the metrics are then left out).
    public static func current() -> ProcessMetrics? {
        guard let stat = readSmallFile("/proc/self/stat"),
            let close = stat.lastIndex(of: UInt8(ascii: ")"))
        else { return nil }
        // Fields after "(comm)", numbered as in proc(5): state is field 3.
        let fields = stat[(close + 2)...].split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
        func field(_ number: Int) -> UInt64? { number - 3 < fields.count ? UInt64(fields[number - 3]) : nil }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23),
            let rss = field(24)
        else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessMetrics(
            cpuSeconds: Double(utime + stime) / ticks, residentBytes: rss * page, virtualBytes: vsize,
            startTimeSeconds: startTime(ticksAfterBoot: Double(start) / ticks), openFDs: countOpenFDs(),
            maxFDs: UInt64(limit.rlim_cur))
    }

    func render(into writer: inout PrometheusTextWriter) {
        writer.family("process_cpu_seconds_total", .counter, help: "Total user and system CPU time spent in seconds.")
        writer.sample("process_cpu_seconds_total", [], cpuSeconds)
        writer.family("process_resident_memory_bytes", .gauge, help: "Resident memory size in bytes.")
        writer.sample("process_resident_memory_bytes", [], residentBytes)
        writer.family("process_virtual_memory_bytes", .gauge, help: "Virtual memory size in bytes.")
        writer.sample("process_virtual_memory_bytes", [], virtualBytes)
        writer.family("process_start_time_seconds", .gauge, help: "Start time of the process since unix epoch in seconds.")
        writer.sample("process_start_time_seconds", [], startTimeSeconds)
        writer.family("process_open_fds", .gauge, help: "Number of open file descriptors.")
        writer.sample("process_open_fds", [], openFDs)
        writer.family("process_max_fds", .gauge, help: "Maximum number of open file descriptors.")
        writer.sample("process_max_fds", [], maxFDs)
    }

    static func readSmallFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        var total = 0
        while total < bytes.count {
            let count = bytes[total...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            total += count
        }
        return Array(bytes[..<total])
    }

    /// /proc gives the start in clock ticks after boot: now, less the time since then.
    static func startTime(ticksAfterBoot seconds: Double) -> Double {
        var wall = timespec()
        var boot = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let wallSeconds = Double(wall.tv_sec) + Double(wall.tv_nsec) / 1e9
        let bootSeconds = Double(boot.tv_sec) + Double(boot.tv_nsec) / 1e9
        return (wallSeconds - (bootSeconds - seconds)).rounded()
    }

    static func countOpenFDs() -> UInt64 {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count: UInt64 = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { $0.first }
            if name != UInt8(ascii: ".") { count += 1 }
        }
        return count > 0 ? count - 1 : 0  // the directory's own descriptor
    }
}
