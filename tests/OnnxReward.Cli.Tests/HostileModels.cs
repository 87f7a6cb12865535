using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests;

/// <summary>
/// Broken and hostile variants of the exported armorm-tiny, built in temp folders from the one export CliRunner makes:
/// a model whose output is NaN for inputs holding one token, and models whose chat template is hostile.
/// </summary>
internal static class HostileModels
{
    /// <summary>Token whose embedding row is NaN in <see cref="NanModel"/> (" Web" in the Llama-3 vocabulary).</summary>
    public const int NanToken = 5000;

    /// <summary>Response text that tokenizes to contain <see cref="NanToken"/>.</summary>
    public const string NanText = "the Web";

    private static readonly Lazy<string> Nan = new(BuildNanModel);

    /// <summary>armorm-tiny with the embedding row of <see cref="NanToken"/> set to NaN: every input holding that token
    /// scores NaN (RMSNorm of a NaN row is NaN, and causal attention carries it to the reward position); every other
    /// input scores exactly as armorm-tiny does.</summary>
    public static string NanModel => Nan.Value;

    private static string BuildNanModel()
    {
        var dir = CopyOf(CliRunner.ArmormTiny, "armorm-tiny-nan", linkData: false);
        // The exported fp32 embedding row of NanToken, found by its values: the checkpoint stores it as bf16, whose bits
        // are the top half of the fp32 bits.
        var shard = Path.Combine(SharedData.ArmormTiny, "model-00001-of-00002.safetensors");
        var bytes = File.ReadAllBytes(shard);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(bytes.AsSpan(8, headerLength))!["model.embed_tokens.weight"]!;
        Assert.That(header["dtype"]!.GetValue<string>(), Is.EqualTo("BF16"), "armorm-tiny's embedding is bf16");
        var hidden = header["shape"]![1]!.GetValue<int>();
        var start = 8 + headerLength + header["data_offsets"]![0]!.GetValue<int>() + NanToken * hidden * 2;
        var row = new byte[hidden * 4];
        for (var i = 0; i < hidden; i++)
        {
            row[i * 4 + 2] = bytes[start + i * 2];
            row[i * 4 + 3] = bytes[start + i * 2 + 1];
        }
        var dataPath = Path.Combine(dir, "model.onnx.data");
        var data = File.ReadAllBytes(dataPath);
        var at = data.AsSpan().IndexOf(row);
        Assert.That(at, Is.GreaterThanOrEqualTo(0), "the embedding row is in model.onnx.data");
        Assert.That(data.AsSpan(at + 1).IndexOf(row), Is.LessThan(0), "and only once");
        for (var i = 0; i < hidden; i++)
            BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(at + i * 4), float.NaN);
        File.WriteAllBytes(dataPath, data);
        return dir;
    }

    /// <summary>A template prefix that spins <paramref name="iterations"/> thousand loop iterations before rendering
    /// (within the template budget: 3.0 M of its 4 M steps, ~1.4 s per conversation at 3,000 on the 2-core machine), so each conversation costs
    /// real CPU time and cancellation can be observed.</summary>
    public static string Spin(int iterations) =>
        $"{{% for i in range({iterations}) %}}{{% for j in range(1000) %}}{{% endfor %}}{{% endfor %}}";

    /// <summary>A copy of armorm-tiny whose chat_template is <paramref name="prefix"/> + the original template (or
    /// <paramref name="replace"/> when given). Small files are copied; model.onnx.data is hard-linked where it can be.</summary>
    public static string WithTemplate(string name, string prefix, string? replace = null)
    {
        var dir = CopyOf(CliRunner.ArmormTiny, name, linkData: true);
        var path = Path.Combine(dir, "tokenizer_config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config["chat_template"] = replace ?? prefix + config["chat_template"]!.GetValue<string>();
        File.Delete(path);
        File.WriteAllText(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
        return dir;
    }

    private static string CopyOf(string source, string name, bool linkData)
    {
        var dir = Path.Combine(SharedData.NewTempDirectory("onnxreward-hostile"), name);
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.GetFiles(source))
        {
            var target = Path.Combine(dir, Path.GetFileName(file));
            if (linkData && Path.GetFileName(file) == "model.onnx.data" && HardLink(file, target))
                continue;                              // ONNX Runtime refuses a symbolic link out of the model folder
            {
                File.Copy(file, target);
                if (!OperatingSystem.IsWindows())
                    File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            }
        }
        return dir;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int Link(string existing, string created);

    private static bool HardLink(string existing, string created)
    {
        try
        {
            return !OperatingSystem.IsWindows() && Link(existing, created) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }
}
