using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>Writable copies of armorm-tiny in temp folders, edits of their files, and byte+mtime snapshots of folders.</summary>
internal static class CheckpointCopies
{
    /// <summary>Files of armorm-tiny an export reads (README and goldens are left out: they only cost copy time).</summary>
    private static readonly string[] Files =
    [
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
    ];

    /// <summary>A writable copy of armorm-tiny in <paramref name="folder"/> (created), returned.</summary>
    public static string ArmormTiny(string folder)
    {
        Directory.CreateDirectory(folder);
        foreach (var f in Files)
        {
            var to = Path.Combine(folder, f);
            File.Copy(Path.Combine(SharedData.ArmormTiny, f), to);
            File.SetUnixFileMode(to, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
        return folder;
    }

    /// <summary>Edits config.json (or another JSON file) of a checkpoint copy.</summary>
    public static void EditJson(string folder, Action<JsonObject> edit, string file = "config.json")
    {
        var path = Path.Combine(folder, file);
        var node = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(node);
        File.WriteAllText(path, node.ToJsonString());
    }

    /// <summary>The shard, absolute offset and byte length of a tensor's data in a sharded copy.</summary>
    public static (string Shard, long Offset, long Length) Locate(string folder, string tensor)
    {
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "model.safetensors.index.json")));
        var shard = Path.Combine(folder, index.RootElement.GetProperty("weight_map").GetProperty(tensor).GetString()!);
        using var f = File.OpenRead(shard);
        var lengthField = new byte[8];
        f.ReadExactly(lengthField);
        var headerLength = (long)BitConverter.ToUInt64(lengthField);
        var header = new byte[headerLength];
        f.ReadExactly(header);
        using var doc = JsonDocument.Parse(Encoding.UTF8.GetString(header));
        var offsets = doc.RootElement.GetProperty(tensor).GetProperty("data_offsets");
        long begin = offsets[0].GetInt64(), end = offsets[1].GetInt64();
        return (shard, 8 + headerLength + begin, end - begin);
    }

    /// <summary>Overwrites bytes of a file in place.</summary>
    public static void Overwrite(string path, long offset, ReadOnlySpan<byte> bytes)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
        f.Position = offset;
        f.Write(bytes);
    }

    /// <summary>Every entry under <paramref name="folder"/> (recursively) with its length, SHA-256, mtime and mode; an
    /// absent folder is an empty snapshot marked absent.</summary>
    public static SortedDictionary<string, string> Snapshot(string folder)
    {
        var snap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (!Directory.Exists(folder))
        {
            snap["<absent>"] = "";
            return snap;
        }
        foreach (var entry in Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(folder, entry);
            if (Directory.Exists(entry))
            {
                snap[rel + "/"] = File.GetUnixFileMode(entry).ToString();
                continue;
            }
            var info = new FileInfo(entry);
            using var s = File.OpenRead(entry);
            snap[rel] = $"{info.Length} {Convert.ToHexStringLower(SHA256.HashData(s))} {info.LastWriteTimeUtc:O} {File.GetUnixFileMode(entry)}";
        }
        return snap;
    }

    /// <summary>Hidden staging folders an export left next to <paramref name="outputDirectory"/>.</summary>
    public static string[] StagingLeftovers(string outputDirectory) =>
        Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(outputDirectory)))
            ? Directory.GetDirectories(Path.GetDirectoryName(Path.GetFullPath(outputDirectory))!, $".{Path.GetFileName(outputDirectory)}.*")
            : [];
}
