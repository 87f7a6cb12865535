using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OnnxReward.Hosting;

/// <summary>
/// <c>Authorization: Bearer &lt;key&gt;</c> against <see cref="RewardModelHostingOptions.ApiKey"/>. With no key
/// configured every request is authenticated (the service is open, as the operator chose); with one, a missing or
/// wrong key is challenged with 401, <c>WWW-Authenticate: Bearer</c> and a problem body saying what to send. The key
/// is compared by SHA-256 digest in constant time, so neither its content nor its length leaks through timing.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IOptions<RewardModelHostingOptions> hosting,
    IProblemDetailsService problems) : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, logger, encoder)
{
    internal const string Unauthorized =
        "missing or wrong API key: send the header 'Authorization: Bearer <key>' with the key the server was started with " +
        "(--api-key or ONNXREWARD_API_KEY).";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var key = hosting.Value.ApiKey;
        if (key is null)
            return Task.FromResult(Success("anonymous"));
        var header = Request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            return Task.FromResult(AuthenticateResult.NoResult());
        var given = SHA256.HashData(Encoding.UTF8.GetBytes(header[prefix.Length..].Trim()));
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        return Task.FromResult(CryptographicOperations.FixedTimeEquals(given, expected)
            ? Success("api-key")
            : AuthenticateResult.Fail("wrong API key"));
    }

    private AuthenticateResult Success(string name) =>
        AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, name)], Scheme.Name)), Scheme.Name));

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer";
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails = { Status = StatusCodes.Status401Unauthorized, Title = "Unauthorized", Detail = Unauthorized },
        }).ConfigureAwait(false);
    }
}
