namespace OnnxReward.Cli.Serving;

/// <summary>
/// What <c>onnxreward serve</c> decides beyond the hosted model's options (<see cref="Hosting.RewardModelHostingOptions"/>):
/// where Kestrel listens, how long shutdown waits, how much it logs. Validated before anything listens.
/// </summary>
internal sealed record ServeSettings
{
    /// <summary>Where Kestrel listens; loopback unless told otherwise (port 0 = any free port).</summary>
    public string Urls { get; init; } = "http://127.0.0.1:8000";

    /// <summary>How long shutdown waits for accepted requests to finish (--shutdown-timeout-s).</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Least level the console logger writes (tests raise it to keep their output readable).</summary>
    public Microsoft.Extensions.Logging.LogLevel MinimumLogLevel { get; init; } = Microsoft.Extensions.Logging.LogLevel.Information;

    public void Validate()
    {
        ListenAddresses.Parse(Urls);
        if (ShutdownTimeout < TimeSpan.Zero)
            throw new ArgumentException("--shutdown-timeout-s must be 0 or more.");
    }
}

/// <summary>
/// Strict parsing of <c>--urls</c> before Kestrel sees it. Kestrel treats any host it cannot parse as an IP address,
/// a port typo included (<c>http://127.0.0.1:abc</c>), as "every interface on port 80", so a typo would expose the service
/// on every network the machine is on. Here every entry must be <c>http://HOST[:PORT][/]</c> with HOST an IP address,
/// <c>localhost</c>, or <c>*</c> / <c>+</c> / <c>0.0.0.0</c> / <c>[::]</c> (every interface, asked for explicitly), and
/// PORT a number from 0 to 65535; anything else is a one-line error naming the entry and the fix.
/// </summary>
internal static class ListenAddresses
{
    public static IReadOnlyList<string> Parse(string urls)
    {
        var entries = (urls ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (entries.Length == 0)
            throw new ArgumentException("--urls is empty: give where to listen, e.g. http://127.0.0.1:8000.");
        foreach (var url in entries)
            Check(url);
        return entries;
    }

    private static void Check(string url)
    {
        string Bad(string why) => $"--urls '{url}' {why}";
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0)
            throw new ArgumentException(Bad("has no scheme: write http://HOST:PORT, e.g. http://127.0.0.1:8000."));
        var name = url[..scheme].ToLowerInvariant();
        if (name == "https")
            throw new ArgumentException(Bad(
                "asks for https, but serve takes no certificate: listen on http (loopback) and terminate TLS in a reverse proxy in front of it."));
        if (name != "http")
            throw new ArgumentException(Bad($"has the scheme '{url[..scheme]}': serve listens on http://HOST:PORT only."));
        var rest = url[(scheme + 3)..];
        var slash = rest.IndexOf('/');
        if (slash >= 0)
        {
            if (slash < rest.Length - 1)
                throw new ArgumentException(Bad(
                    $"has a path ('{rest[slash..]}'): Kestrel listens on an address and port only; the endpoints are at the root (/v1/score, …)."));
            rest = rest[..slash];
        }
        string host, port;
        if (rest.StartsWith('['))
        {
            var close = rest.IndexOf(']');
            if (close < 0)
                throw new ArgumentException(Bad("has an IPv6 address without its closing ']': write e.g. http://[::1]:8000."));
            host = rest[1..close];
            var after = rest[(close + 1)..];
            if (after.Length > 0 && after[0] != ':')
                throw new ArgumentException(Bad($"has '{after}' after the IPv6 address: write http://[ADDRESS]:PORT."));
            port = after.Length > 0 ? after[1..] : "80";
        }
        else
        {
            var colon = rest.IndexOf(':');
            host = colon < 0 ? rest : rest[..colon];
            port = colon < 0 ? "80" : rest[(colon + 1)..];
        }
        if (port.Length == 0 || port.Length > 5 || !port.All(char.IsAsciiDigit) || int.Parse(port, System.Globalization.CultureInfo.InvariantCulture) > 65535)
            throw new ArgumentException(Bad($"has the port '{port}', which is not a number from 0 to 65535 (0 = any free port)."));
        if (host.Length == 0)
            throw new ArgumentException(Bad("has no host: give an IP address, e.g. http://127.0.0.1:8000."));
        if (host is "*" or "+" || host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
            return;
        var ipv4 = host.All(c => char.IsAsciiDigit(c) || c == '.');
        if (System.Net.IPAddress.TryParse(host, out var ip)
            && (ipv4 ? host.Count(c => c == '.') == 3 : ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && rest.StartsWith('[')))
            return;
        throw new ArgumentException(Bad(ipv4 || host.Contains(':')
            ? $"has the host '{host}', which is not an IP address (IPv4 is four numbers, IPv6 goes in brackets: http://[::1]:8000)."
            : $"has the host name '{host}': Kestrel would listen on every interface for it. Give an IP address of this machine " +
              "(127.0.0.1; 0.0.0.0 for every interface on purpose) or localhost."));
    }
}
