using System.CommandLine;
using OnnxReward.Cli.IO;
using OnnxReward.Cli.Serving;

namespace OnnxReward.Cli.Commands;

/// <summary><c>onnxreward serve</c>: the HTTP scoring service (see <see cref="ScoringServer"/>).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var modelOptions = new ModelOptions();
        var urls = new Option<string>("--urls")
        {
            Description = "Where to listen (semicolon-separated). Loopback by default; binding elsewhere without --api-key is warned about.",
            DefaultValueFactory = _ => "http://127.0.0.1:8000",
        };
        var maxWait = new Option<double>("--max-wait-ms")
        {
            Description = "Longest the first request of a round waits for others to join it. Default 0: a round starts as soon as the model " +
                          "is free and takes whatever queued meanwhile (continuous batching); a few ms can pay on a GPU under open-loop load.",
            DefaultValueFactory = _ => 0,
        };
        var maxBatch = new Option<int>("--max-batch-size") { Description = "Most rows per scoring round across requests (1 = no cross-request batching).", DefaultValueFactory = _ => 64 };
        var queue = new Option<int>("--queue-capacity") { Description = "Most rows admitted and unanswered; beyond it 503 + Retry-After.", DefaultValueFactory = _ => 1024 };
        var maxBody = new Option<long>("--max-body-bytes") { Description = "Largest request body (413 above).", DefaultValueFactory = _ => 8L << 20 };
        var maxConversations = new Option<int>("--max-conversations") { Description = "Most conversations per request (413 above).", DefaultValueFactory = _ => 256 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer <key>' (default: ONNXREWARD_API_KEY; none = open)." };
        var shutdown = new Option<double>("--shutdown-timeout-s") { Description = "How long shutdown waits for accepted requests.", DefaultValueFactory = _ => 30 };
        var requestTimeout = new Option<double>("--request-timeout-s")
        {
            Description = "Deadline of one request, body included: past it its work stops and it gets 408 (slow body) or 503 (slow work).",
            DefaultValueFactory = _ => new ServeSettings().RequestTimeout.TotalSeconds,
        };
        var command = new Command("serve",
            "HTTP scoring service: POST /v1/score, /v1/bon, /get_reward (OpenRLHF), /v1/classify (vLLM/SGLang); GET /health, /metrics, /openapi.json.")
        {
            urls, maxWait, maxBatch, queue, maxBody, maxConversations, apiKey, shutdown,
            requestTimeout,
        };
        modelOptions.AddTo(command);
        command.SetAction(parse => CommandSupport.Guard(() =>
        {
            var key = parse.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("ONNXREWARD_API_KEY");
            var settings = new ServeSettings
            {
                Urls = parse.GetValue(urls)!,
                MaxWaitMs = parse.GetValue(maxWait),
                MaxBatchSize = parse.GetValue(maxBatch),
                MaxBatchTokens = parse.GetValue(modelOptions.BatchTokens),
                QueueCapacity = parse.GetValue(queue),
                MaxBodyBytes = parse.GetValue(maxBody),
                MaxConversations = parse.GetValue(maxConversations),
                ApiKey = string.IsNullOrEmpty(key) ? null : key,
                ShutdownTimeout = TimeSpan.FromSeconds(parse.GetValue(shutdown)),
                RequestTimeout = Seconds(parse.GetValue(requestTimeout), "--request-timeout-s"),
            };
            settings.Validate();
            var dir = parse.GetValue(modelOptions.Model);
            if (dir is null)
                _ = CommandSupport.DefaultModelDirectory();            // fail before binding when there is no model at all
            else if (!dir.Exists)
                throw new CliException($"--model {dir.FullName} does not exist.");
            foreach (var url in settings.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                if (!IsLoopback(url) && settings.ApiKey is null)
                    Console.Error.WriteLine($"warning: listening on {url}, beyond loopback, with no API key: anyone who can reach it can use it.");

            var server = ScoringServer.Create(settings, () => modelOptions.Load(parse, dir));
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
            Console.Error.WriteLine($"onnxreward serve: listening on {string.Join(", ", server.Urls)}; loading the model (GET /health is 503 until ready).");
            _ = server.Ready.ContinueWith(t =>
            {
                if (t.IsCompletedSuccessfully)
                    Console.Error.WriteLine("onnxreward serve: model loaded, ready.");
            }, TaskScheduler.Default);
            server.RunAsync().GetAwaiter().GetResult();
            Console.Error.WriteLine("onnxreward serve: stopped (accepted requests finished, queue drained).");
            return server.LoadError is null ? 0 : 1;
        }));
        return command;
    }

    private static TimeSpan Seconds(double value, string option) =>
        double.IsFinite(value) && value is > 0 and <= 86400 ? TimeSpan.FromSeconds(value)
            : throw new CliException($"{option} is {value}; give more than 0 and at most 86400 seconds.");

    private static bool IsLoopback(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var u) && (u.IsLoopback || u.Host == "localhost");
}
