using System.CommandLine;
using OnnxReward.Cli.IO;
using OnnxReward.Model;

namespace OnnxReward.Cli.Commands;

/// <summary>
/// The model-loading options every scoring command takes — --model, --ep, --max-batch-tokens, --max-padding-waste,
/// --truncation, --max-length, --content-special-tokens — declared once: <see cref="AddTo"/> puts them on a command,
/// <see cref="Load(ParseResult)"/> turns a parse into a loaded <see cref="RewardModel"/>.
/// </summary>
internal sealed class ModelOptions
{
    public Option<DirectoryInfo?> Model { get; }
    public Option<string> Provider { get; } = CommandSupport.ProviderOption();
    public Option<int> BatchTokens { get; } = CommandSupport.BatchTokensOption();
    public Option<double> PaddingWaste { get; } = CommandSupport.PaddingWasteOption();
    public Option<string> Truncation { get; } = CommandSupport.TruncationOption();
    public Option<int?> MaxLength { get; } = CommandSupport.MaxLengthOption();
    public Option<string> ContentSpecialTokens { get; } = CommandSupport.ContentSpecialTokensOption();

    public ModelOptions(bool modelRequired = false) => Model = CommandSupport.ModelOption(modelRequired);

    /// <summary>Adds every option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (Option o in new Option[] { Model, Provider, BatchTokens, PaddingWaste, Truncation, MaxLength, ContentSpecialTokens })
            command.Options.Add(o);
    }

    /// <summary>Loads the model the parse names (the default model when --model is absent).</summary>
    /// <exception cref="CliException">An option value is not one the library takes.</exception>
    public RewardModel Load(ParseResult parse) => Load(parse, parse.GetValue(Model));

    /// <summary>Loads <paramref name="directory"/> with the parse's other options.</summary>
    public RewardModel Load(ParseResult parse, DirectoryInfo? directory) => CommandSupport.LoadModel(directory, parse.GetValue(Provider)!,
        parse.GetValue(BatchTokens), parse.GetValue(Truncation)!, parse.GetValue(MaxLength), parse.GetValue(PaddingWaste),
        parse.GetValue(ContentSpecialTokens)!);
}

/// <summary>Options shared by the commands; the one place that turns library errors into CLI errors is in
/// CommandSupport.Errors.cs (compiled into the `onnxreward-train` tool too).</summary>
internal static partial class CommandSupport
{
    public static Option<FileInfo?> InputOption() => new("--input", "-i") { Description = "JSON lines to read (default: stdin)." };
    public static Option<FileInfo?> OutputOption() => new("--output", "-o") { Description = "Where to write JSON lines (default: stdout)." };

    public static Option<string?> ShardOption() => new("--shard")
    {
        Description = "i/N: process only shard i (0 to N-1) of N contiguous byte ranges of --input FILE (not stdin), e.g. one per " +
                      "pod of an Indexed Job; line numbers stay the file's, and the N outputs concatenated in order are the unsharded output.",
    };

    /// <summary>The --shard value as a <see cref="Shard"/> (null when absent), checked before any model loads: a valid
    /// i/N, and an input file to split.</summary>
    /// <exception cref="CliException">The value is not a valid i/N, or <paramref name="input"/> is null (stdin).</exception>
    public static Shard? ParseShard(string? value, FileInfo? input)
    {
        if (value is null)
            return null;
        var shard = Shard.Parse(value);
        return input is null ? throw new CliException(Shard.NeedsFile(shard)) : shard;
    }

    public static Option<DirectoryInfo?> ModelOption(bool required = false) => new("--model", "-m")
    {
        Description = required ? "Exported model directory." : "Exported model directory (default: the default model in models/).",
        Required = required,
    };

    public static Option<string> ProviderOption() => new("--ep")
    {
        Description = "Execution provider: auto (CUDA when it loads, else CPU), cuda or cpu.",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<int> BatchTokensOption() => new("--max-batch-tokens")
    {
        Description = "Token budget of one batch (rows x padded length).",
        DefaultValueFactory = _ => 8192,
    };

    public static Option<double> PaddingWasteOption() => new("--max-padding-waste")
    {
        Description = "Largest fraction of a batch's padded tokens that may be padding (rows are length-sorted; 1 = token budget only).",
        DefaultValueFactory = _ => new RewardModelOptions().MaxPaddingWaste,
    };

    public static Option<string> TruncationOption() => new("--truncation")
    {
        Description = "Over-long conversations: error (default) or drop-oldest-turns.",
        DefaultValueFactory = _ => "error",
    };

    public static Option<string> ContentSpecialTokensOption() => new("--content-special-tokens")
    {
        Description = "Special-token strings inside message content: special (default; their ids, as Hugging Face does) or text " +
                      "(plain text, so a response cannot forge turns; use it for untrusted text). {\"text\": …} input always recognises them.",
        DefaultValueFactory = _ => "special",
    };

    public static ContentSpecialTokens ParseContentSpecialTokens(string value) => value.ToLowerInvariant() switch
    {
        "special" => ContentSpecialTokens.Special,
        "text" => ContentSpecialTokens.Text,
        _ => throw new CliException($"--content-special-tokens '{value}' is not one of special, text."),
    };

    public static Option<int?> MaxLengthOption() => new("--max-length") { Description = "Longest accepted conversation in tokens (default: the model's limit)." };

    /// <summary>The default model: models/default beside the working directory or above the executable.</summary>
    public static string DefaultModelDirectory()
    {
        var env = Environment.GetEnvironmentVariable("ONNXREWARD_MODEL");
        if (!string.IsNullOrEmpty(env))
            return env;
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "models", "default");
                if (File.Exists(Path.Combine(candidate, RewardModelManifest.FileName)))
                    return candidate;
            }
        throw new CliException(
            "no --model given and no default model found (models/default/reward_model.json in or above the current directory). " +
            "Pass --model <dir>, or set ONNXREWARD_MODEL.");
    }

    public static ExecutionProviderKind ParseProvider(string ep) => ep.ToLowerInvariant() switch
    {
        "auto" => ExecutionProviderKind.Auto,
        "cuda" => ExecutionProviderKind.Cuda,
        "cpu" => ExecutionProviderKind.Cpu,
        _ => throw new CliException($"--ep '{ep}' is not one of auto, cuda, cpu."),
    };

    public static TruncationPolicy ParseTruncation(string truncation) => truncation.ToLowerInvariant() switch
    {
        "error" => TruncationPolicy.Error,
        "drop-oldest-turns" => TruncationPolicy.DropOldestTurns,
        _ => throw new CliException($"--truncation '{truncation}' is not one of error, drop-oldest-turns."),
    };

    public static RewardModel LoadModel(DirectoryInfo? model, string ep, int maxBatchTokens = 8192, string truncation = "error", int? maxLength = null,
        double maxPaddingWaste = 0.10, string contentSpecialTokens = "special")
    {
        var content = ParseContentSpecialTokens(contentSpecialTokens);
        if (!(maxPaddingWaste is >= 0 and <= 1))
            throw new CliException($"--max-padding-waste is {maxPaddingWaste}; give a fraction from 0 to 1 (0.10 by default).");
        var provider = ParseProvider(ep);
        var policy = ParseTruncation(truncation);
        return RewardModel.Load(model?.FullName ?? DefaultModelDirectory(), new RewardModelOptions
        {
            ExecutionProvider = provider,
            MaxBatchTokens = maxBatchTokens,
            MaxPaddingWaste = maxPaddingWaste,
            Truncation = policy,
            MaxSequenceLength = maxLength,
            ContentSpecialTokens = content,
            LoggerFactory = Logging.Value,
        });
    }

    private static readonly Lazy<Microsoft.Extensions.Logging.ILoggerFactory> Logging = new(IO.StderrLoggerProvider.CreateFactory);
}
