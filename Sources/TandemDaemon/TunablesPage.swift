// TunablesPage: renders docs/tunables.md from the code's own tables: ConfigKey (with
// ConfigKeyDocs) for the daemon, ResourceSpec.tunableDocs and the support table
// (ResourceSettingSupport) for resources, DaemonControl.laterCommands for whether `set` works.
// A test compares the rendering with the file byte for byte.
import TandemControl
import TandemCore

public enum TunablesPage {
    public static let regenerateCommand = "TANDEM_REGENERATE_DOCS=1 swift test --filter TunablesPage"

    public static func render() -> String {
        var lines = [
            "# Tunables",
            "",
            "<!-- Generated from the code's tables by `\(regenerateCommand)`;",
            "     edit Sources/TandemDaemon/ConfigKeyDocs.swift or Sources/TandemControl/ResourceSettingDocs.swift, not this file. -->",
            "",
            "Every setting of `tandemd` and of a resource, with its unit, default, range, whether it",
            "changes on a running resource, and when to change it. How values are written: the",
            "config file in docs/configuration.md, the `create` and `set` requests in",
            "docs/control-protocol.md. Byte sizes accept suffixes (`64MiB`) in the config file, the",
            "flags and `tandemctl`; over the control socket they are plain integers.",
            "",
        ]
        lines += daemonSection()
        lines += resourceSection()
        return lines.joined(separator: "\n") + "\n"
    }

    static func daemonSection() -> [String] {
        var lines = [
            "## Daemon",
            "",
            "Set in the config file (`key = value`) or with the flag of the same name; the flag wins.",
            "Each is read once at start-up: a change takes effect when the daemon is restarted",
            "(resources persist and come back enabled as they were).",
            "`resync_concurrency_max` also changes on the running daemon with `set` without a resource",
            "name (`tandemctl set resync_concurrency_max=8`), until the daemon restarts.",
            "",
            "| Key | Flag | Unit | Default | Range |",
            "|---|---|---|---|---|",
        ]
        for key in ConfigKey.allCases {
            let doc = key.tunableDoc
            lines.append("| `\(doc.name)` | `\(key.flag)` | \(doc.unit) | \(doc.defaultText) | \(doc.range) |")
        }
        lines.append("")
        for key in ConfigKey.allCases {
            let doc = key.tunableDoc
            lines += ["### \(doc.name)", "", doc.advice, ""]
        }
        return lines
    }

    static func resourceSection() -> [String] {
        var lines = [
            "## Resource",
            "",
            "Arguments of `create` (`tandemctl create --help` names the flag of each), persisted with",
            "the resource. *Live* says whether `set` changes the setting on a running resource: `no`",
            "means it is fixed at `create` (delete and create the resource to change it); `not yet`",
            "means `set` is specified to change it but this version refuses it with `unsupported`.",
            "*This version* says what a daemon of this version does with the setting: a setting it",
            "does not carry out yet is refused with error `unsupported` when given (`null` counts as",
            "not given), never accepted and ignored; `tandemctl capabilities` reports the same from",
            "the same table.",
            "",
            "| Key | Unit | Default | Range | Live | This version |",
            "|---|---|---|---|---|---|",
        ]
        let docs = ResourceSpec.tunableDocs
        for doc in docs {
            lines.append(
                "| `\(doc.name)` | \(doc.unit) | \(doc.defaultText) | \(doc.range) | \(live(doc)) | \(support(doc.name)) |")
        }
        lines.append("")
        for doc in docs {
            lines += ["### \(doc.name)", "", doc.advice, ""]
        }
        return lines
    }

    /// What this version does with a resource setting, from the support table.
    static func support(_ key: String) -> String {
        if key == "mode" {
            let works = ResourceSpec.allModes.filter { !ResourceSpec.unsupportedModes.contains($0) }
            guard !ResourceSpec.unsupportedModes.isEmpty else { return "works" }
            return "\(works.map { "`\($0)`" }.joined(separator: ", ")) work; "
                + "\(ResourceSpec.unsupportedModes.map { "`\($0)`" }.joined(separator: ", ")) refused (`unsupported`)"
        }
        return ResourceSpec.unsupportedKeys.contains(key) ? "refused (`unsupported`) when given" : "works"
    }

    /// The Live column: `set` is specified for the designed keys; it changes those of
    /// `ResourceSpec.liveKeys` in this version.
    static func live(_ doc: TunableDoc) -> String {
        guard doc.live else { return "no" }
        return ResourceSpec.liveKeys.contains(doc.name) && !DaemonControl.laterCommands.contains("set") ? "yes" : "not yet"
    }
}
