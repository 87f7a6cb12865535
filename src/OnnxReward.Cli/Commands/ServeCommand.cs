using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OnnxReward.Cli.IO;
using OnnxReward.Cli.Serving;
using OnnxReward.Hosting;

namespace OnnxReward.Cli.Commands;

/// <summary>
/// <c>onnxreward serve</c>: the HTTP scoring service (see <see cref="ScoringServer"/>). Every flag has an environment
/// variable, <c>ONNXREWARD_</c> + the flag's name in capitals with '_' for '-' (<c>--max-batch-tokens</c> →
/// <c>ONNXREWARD_MAX_BATCH_TOKENS</c>, <c>--model</c> → <c>ONNXREWARD_MODEL</c>); a flag on the command line wins over
/// its variable, and the variable over the default.
/// </summary>
internal static class ServeCommand
{
    /// <summary>What a parse of <c>serve</c> asks for: the host's settings, the hosted model's options and the model
    /// directory as given (null = the default model).</summary>
    internal sealed record Configuration(ServeSettings Settings, RewardModelHostingOptions Options, DirectoryInfo? Model);

    private sealed class Flags
    {
        public readonly ModelOptions Model = new();
        public readonly Option<string> Urls = new("--urls")
        {
            Description = "Where to listen (semicolon-separated). Loopback by default; binding elsewhere without --api-key is warned about.",
            DefaultValueFactory = _ => "http://127.0.0.1:8000",
        };
        public readonly Option<double> MaxWait = new("--max-wait-ms")
        {
            Description = "Longest the first request of a round waits for others to join it. Default 0: a round starts as soon as the model " +
                          "is free and takes whatever queued meanwhile (continuous batching); a few ms can pay on a GPU under open-loop load.",
            DefaultValueFactory = _ => 0,
        };
        public readonly Option<int> MaxBatch = new("--max-batch-size")
        {
            Description = "Most rows per scoring round across requests (1 = no cross-request batching).", DefaultValueFactory = _ => Defaults.MaxBatchSize,
        };
        public readonly Option<int> Queue = new("--queue-capacity")
        {
            Description = "Most rows admitted and unanswered; beyond it 503 + Retry-After.", DefaultValueFactory = _ => Defaults.QueueCapacity,
        };
        public readonly Option<long> MaxBody = new("--max-body-bytes") { Description = "Largest request body (413 above).", DefaultValueFactory = _ => Defaults.MaxBodyBytes };
        public readonly Option<int> MaxConversations = new("--max-conversations")
        {
            Description = "Most conversations (queries, candidates) per request (413 above); 1024 takes an OpenRLHF micro-batch of 512 whole.",
            DefaultValueFactory = _ => Defaults.MaxConversations,
        };
        public readonly Option<string?> ApiKey = new("--api-key") { Description = "Require 'Authorization: Bearer <key>' on every route but /health and the OpenAPI document (none = open)." };
        public readonly Option<double> Shutdown = new("--shutdown-timeout-s") { Description = "How long shutdown waits for accepted requests.", DefaultValueFactory = _ => 30 };
        public readonly Option<double> RequestTimeout = new("--request-timeout-s")
        {
            Description = "Deadline of one request, body included: past it its work stops and it gets 408 (slow body) or 503 (slow work).",
            DefaultValueFactory = _ => Defaults.RequestTimeout.TotalSeconds,
        };
        public readonly Option<string?> ServedModelName = new("--served-model-name")
        {
            Description = "Model name the vLLM-style endpoints (\"model\") and GET /info report (default: the model directory's name).",
        };

        public IEnumerable<Option> Own => [Urls, MaxWait, MaxBatch, Queue, MaxBody, MaxConversations, ApiKey, Shutdown, RequestTimeout, ServedModelName];

        public IEnumerable<Option> All => Own.Concat([Model.Model, Model.Provider, Model.BatchTokens, Model.PaddingWaste, Model.Truncation,
            Model.MaxLength, Model.ContentSpecialTokens]);
    }

    private static readonly RewardModelHostingOptions Defaults = new();

    /// <summary>The environment variable of a flag: <c>--max-batch-tokens</c> → <c>ONNXREWARD_MAX_BATCH_TOKENS</c>.</summary>
    internal static string EnvironmentVariable(string flag) => "ONNXREWARD_" + flag.TrimStart('-').Replace('-', '_').ToUpperInvariant();

    public static Command Create() => Create(out _);

    private static Command Create(out Func<ParseResult, Configuration> read)
    {
        var f = new Flags();
        var command = new Command("serve",
            "HTTP scoring service: POST /v1/score, /v1/bon, /get_reward (OpenRLHF), /v1/classify (vLLM/SGLang); GET /health, /info, /metrics, " +
            "/openapi/v1.json. Every flag can come from an environment variable ONNXREWARD_<FLAG> (e.g. ONNXREWARD_MAX_BATCH_TOKENS); the flag wins.");
        foreach (var o in f.Own)
            command.Options.Add(o);
        f.Model.AddTo(command);
        foreach (var o in f.All)
            FromEnvironment(o);
        read = parse => Read(f, parse);
        command.SetAction(parse => CommandSupport.Guard(() => Run(Read(f, parse))));
        return command;
    }

    /// <summary>Parses <paramref name="args"/> as <c>serve</c> would (flags, then environment variables, then defaults).</summary>
    internal static Configuration Parse(params string[] args)
    {
        var command = Create(out var read);
        var parse = command.Parse(args);
        if (parse.Errors.Count > 0)
            throw new CliException(string.Join(" ", parse.Errors.Select(e => e.Message)));
        return read(parse);
    }

    /// <summary>Makes a flag's default its environment variable when set (the flag on the command line still wins),
    /// and says so in its description.</summary>
    private static void FromEnvironment(Option option)
    {
        var name = EnvironmentVariable(option.Name);
        option.Description += $" [env: {name}]";
        switch (option)
        {
            case Option<string> o: Chain(o, name, v => v); break;     // string and string? options alike
            case Option<int> o: Chain(o, name, v => Number(v, name, s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture))); break;
            case Option<int?> o: Chain<int?>(o, name, v => Number(v, name, s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture))); break;
            case Option<long> o: Chain(o, name, v => Number(v, name, s => long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture))); break;
            case Option<double> o: Chain(o, name, v => Number(v, name, s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture))); break;
            case Option<DirectoryInfo?> o: Chain(o, name, v => new DirectoryInfo(v)); break;
            default: throw new InvalidOperationException($"{option.Name}: no environment mapping for its type.");
        }
    }

    private static void Chain<T>(Option<T> option, string name, Func<string, T> parse)
    {
        var fallback = option.DefaultValueFactory;
        option.DefaultValueFactory = r => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? parse(v)
            : fallback is null ? default! : fallback(r);
    }

    private static T Number<T>(string value, string name, Func<string, T> parse)
    {
        try
        {
            return parse(value.Trim());
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new CliException($"{name} is '{value}', which is not a number of the kind its flag takes.");
        }
    }

    private static Configuration Read(Flags f, ParseResult parse)
    {
        var key = parse.GetValue(f.ApiKey);
        var settings = new ServeSettings
        {
            Urls = parse.GetValue(f.Urls)!,
            ShutdownTimeout = TimeSpan.FromSeconds(parse.GetValue(f.Shutdown)),
        };
        var options = new RewardModelHostingOptions
        {
            ExecutionProvider = CommandSupport.ParseProvider(parse.GetValue(f.Model.Provider)!),
            MaxBatchTokens = parse.GetValue(f.Model.BatchTokens),
            MaxPaddingWaste = parse.GetValue(f.Model.PaddingWaste),
            Truncation = CommandSupport.ParseTruncation(parse.GetValue(f.Model.Truncation)!),
            MaxLength = parse.GetValue(f.Model.MaxLength),
            ContentSpecialTokens = CommandSupport.ParseContentSpecialTokens(parse.GetValue(f.Model.ContentSpecialTokens)!),
            MaxWaitMs = parse.GetValue(f.MaxWait),
            MaxBatchSize = parse.GetValue(f.MaxBatch),
            QueueCapacity = parse.GetValue(f.Queue),
            MaxBodyBytes = parse.GetValue(f.MaxBody),
            MaxConversations = parse.GetValue(f.MaxConversations),
            ApiKey = string.IsNullOrEmpty(key) ? null : key,
            RequestTimeout = Seconds(parse.GetValue(f.RequestTimeout), "--request-timeout-s"),
            ServedModelName = parse.GetValue(f.ServedModelName),
        };
        return new Configuration(settings, options, parse.GetValue(f.Model.Model));
    }

    private static int Run(Configuration c)
    {
        var (settings, options, dir) = c;
        settings.Validate();
        if (dir is not null && !dir.Exists)
            throw new CliException($"--model {dir.FullName} does not exist.");
        options.ModelDirectory = dir?.FullName ?? CommandSupport.DefaultModelDirectory();   // fail before binding when there is no model
        if (RewardModelHostingOptionsValidator.Errors(options).FirstOrDefault() is { } error)
            throw new CliException(error);

        var server = ScoringServer.Create(settings, o => Copy(options, o));
        var log = server.Services.GetRequiredService<ILoggerFactory>().CreateLogger("OnnxReward.Cli.Serve");
        foreach (var url in settings.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            if (!IsLoopback(url) && options.ApiKey is null)
                log.LogWarning("listening on {Url}, beyond loopback, with no API key: anyone who can reach it can use it.", url);
        try
        {
            server.StartAsync().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw new CliException($"cannot listen on {settings.Urls}: {e.Message.ReplaceLineEndings(" ").TrimEnd('.')}. " +
                                   "Give an address of this machine and a free port (--urls).");
        }
        log.LogInformation("listening on {Urls}; loading the model (GET /health is 503 until ready).", string.Join(", ", server.Urls));
        server.RunAsync().GetAwaiter().GetResult();
        log.LogInformation("stopped (accepted requests finished, queue drained).");
        return server.LoadError is null ? 0 : 1;
    }

    /// <summary>Copies the parsed options onto the instance the options pattern configures.</summary>
    internal static void Copy(RewardModelHostingOptions from, RewardModelHostingOptions to)
    {
        to.ModelDirectory = from.ModelDirectory;
        to.ExecutionProvider = from.ExecutionProvider;
        to.MaxBatchTokens = from.MaxBatchTokens;
        to.MaxPaddingWaste = from.MaxPaddingWaste;
        to.Truncation = from.Truncation;
        to.MaxLength = from.MaxLength;
        to.ContentSpecialTokens = from.ContentSpecialTokens;
        to.MaxWaitMs = from.MaxWaitMs;
        to.MaxBatchSize = from.MaxBatchSize;
        to.QueueCapacity = from.QueueCapacity;
        to.MaxBodyBytes = from.MaxBodyBytes;
        to.MaxConversations = from.MaxConversations;
        to.ApiKey = from.ApiKey;
        to.RequestTimeout = from.RequestTimeout;
        to.ServedModelName = from.ServedModelName;
    }

    private static TimeSpan Seconds(double value, string option) =>
        double.IsFinite(value) && value is > 0 and <= 86400 ? TimeSpan.FromSeconds(value)
            : throw new CliException($"{option} is {value.ToString(CultureInfo.InvariantCulture)}; give more than 0 and at most 86400 seconds.");

    private static bool IsLoopback(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var u) && (u.IsLoopback || u.Host == "localhost");
}
