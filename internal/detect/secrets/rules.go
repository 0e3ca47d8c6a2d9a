package secrets

import (
	"regexp"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// Rule finds one kind of secret. Keywords (case-insensitive literals) must occur for the
// rule's expression to run, on a window of text around each occurrence; Group is the
// capture group holding the secret itself (0: the whole match).
type Rule struct {
	ID          string
	Description string
	Keywords    []string
	Pattern     *Regexp
	Group       int
	MinEntropy  float64 // bits per character the secret must reach (0: no check)
	// Weak rules match shapes that made-up values share (generic assignments, headers):
	// values with typed sequences ("abc123", "123456") or one repeated character are
	// taken for placeholders. Rules for prefixed provider tokens only refuse explicit
	// placeholders ("xxxx", "example", "<your key>").
	Weak     bool
	Severity detect.Severity
	// Check, when set, must accept the secret (and the whole match) too.
	Check func(secret, match string) bool
	// Anchored rules match starting at their keyword (the pattern begins with ^); the
	// match passed to Check then starts at the name before the keyword. Others match in a
	// window from Pre bytes before the keyword to Post bytes after it.
	Anchored  bool
	Pre, Post int
	// Near, when set, lists bytes one of which must occur within NearWithin bytes after
	// the keyword (a cheap test before the expression runs: "=" or ":" after "key").
	Near       string
	NearWithin int
	// Gate, when set, must accept the text after the keyword before the expression runs.
	Gate func(text string, end int) bool
}

// Regexp is a rule's expression, compiled when a text first has the rule's keyword: in a
// gateway's traffic most rules never run, and compiled the 46 built-in expressions took
// 280 KiB of the heap for the life of the process.
type Regexp struct {
	expr string
	once sync.Once
	re   *regexp.Regexp
}

func re(expr string) *Regexp { return &Regexp{expr: expr} }

// Regexp returns the compiled expression. The built-in expressions are constants that the
// package's tests compile (TestRulesCompile).
func (r *Regexp) Regexp() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.expr) })
	return r.re
}

func (r *Regexp) String() string { return r.expr }

// Rules is the built-in rule set: provider tokens with recognizable shapes, key blocks,
// JWTs, credentials in URLs and curl command lines, and generic assignments of
// high-entropy values to names that say secret.
var Rules = []Rule{
	{ID: "private-key", Description: "a private key", Keywords: []string{"private key-----", "private key block-----"}, Pre: 130, Post: 16384,
		Pattern: re(`-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----\s*(?:[A-Za-z-]+: [^\n]*\n)*\s*[A-Za-z0-9+/=\s\\n]{64,}?(?:-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|$)`), Severity: detect.Critical},
	{ID: "aws-access-key-id", Description: "an AWS access key id", Keywords: []string{"akia", "asia", "abia", "acca", "a3t"},
		Pattern: re(`\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b`), Group: 1, MinEntropy: 3, Severity: detect.High, Check: notExample},
	{ID: "aws-secret-access-key", Description: "an AWS secret access key", Keywords: []string{"aws"},
		Anchored: true, Near: "=:", NearWithin: 64, Post: 120, Pattern: re(`(?i)^aws[\w.-]{0,20}(?:secret|sk)[\w.-]{0,20}['"]?\s*(?:=|:|=>|:=)\s*['"]?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)`), Group: 1, MinEntropy: 3.5, Severity: detect.High},
	{ID: "aws-bedrock-api-key", Description: "an Amazon Bedrock API key", Keywords: []string{"absk", "bedrock-api-key-"},
		Pattern: re(`\b(ABSK[A-Za-z0-9+/]{109,269}={0,2}|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%-]*)`), Group: 1, Severity: detect.High},
	{ID: "github-token", Description: "a GitHub token", Keywords: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"},
		Pattern: re(`\b(gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{82})\b`), Group: 1, MinEntropy: 3, Severity: detect.High},
	{ID: "gitlab-token", Description: "a GitLab token", Keywords: []string{"glpat-", "glptt-", "glrt-", "gldt-", "glsoat-", "glft-", "glimt-", "glagent-", "gloas-", "glcbt-", "gr1348941"},
		Pattern: re(`\b(gl(?:pat|ptt|rt|dt|soat|ft|imt|agent|oas|cbt)-[0-9A-Za-z_.-]{20,}|GR1348941[0-9A-Za-z_-]{20})`), Group: 1, MinEntropy: 3, Severity: detect.High},
	{ID: "slack-token", Description: "a Slack token", Keywords: []string{"xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxo-", "xoxe", "xapp-"},
		Pattern: re(`\b(xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{140,170}|xox[baprse]-(?:\d+-){1,3}[0-9A-Za-z]{8,}[0-9A-Za-z-]*|xapp-\d-[A-Za-z0-9]+-\d+-[a-z0-9]+)`), Group: 1, MinEntropy: 2, Severity: detect.High, Check: slackOK},
	{ID: "slack-webhook", Description: "a Slack webhook URL", Keywords: []string{"hooks.slack.com"},
		Pattern: re(`hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9+/_-]{20,})`), Group: 1, Severity: detect.High},
	{ID: "stripe-key", Description: "a Stripe secret key", Keywords: []string{"sk_live_", "sk_test_", "rk_live_", "rk_test_", "sk_prod_", "rk_prod_"},
		Pattern: re(`\b((?:sk|rk)_(?:live|test|prod)_[0-9a-zA-Z]{10,99})\b`), Group: 1, MinEntropy: 3, Severity: detect.High},
	{ID: "openai-api-key", Description: "an OpenAI API key", Keywords: []string{"t3blbkfj", "sk-proj-", "sk-svcacct-", "sk-admin-"}, Pre: 120,
		Pattern: re(`\b(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|sk-[A-Za-z0-9_-]{8,}T3BlbkFJ[A-Za-z0-9_-]{8,})`), Group: 1, MinEntropy: 3, Severity: detect.High},
	{ID: "anthropic-api-key", Description: "an Anthropic API key", Keywords: []string{"sk-ant-"},
		Pattern: re(`\b(sk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_-]{80,}AA)\b`), Group: 1, MinEntropy: 3, Severity: detect.High},
	{ID: "google-api-key", Description: "a Google API key (often public by design: Maps and Firebase browser keys)", Keywords: []string{"aiza"},
		Pattern: re(`\b(AIza[0-9A-Za-z_-]{35})`), Group: 1, MinEntropy: 4, Severity: detect.Low},
	{ID: "azure-ad-client-secret", Description: "an Azure AD client secret", Keywords: []string{"q~"}, Pre: 6,
		Pattern: re(`(?:^|[^A-Za-z0-9_~.-])([A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34})(?:[^A-Za-z0-9_~.-]|$)`), Group: 1, MinEntropy: 3.5, Severity: detect.High, Check: notPlaceholder},
	{ID: "1password-service-account-token", Description: "a 1Password service account token", Keywords: []string{"ops_eyj"}, Post: 2000,
		Pattern: re(`\b(ops_eyJ[A-Za-z0-9+/]{250,}={0,3})`), Group: 1, Severity: detect.High},
	{ID: "huggingface-token", Description: "a Hugging Face token", Keywords: []string{"hf_", "api_org_"},
		Pattern: re(`\b((?:hf_|api_org_)[A-Za-z]{34})\b`), Group: 1, MinEntropy: 3.5, Severity: detect.High},
	{ID: "vault-token", Description: "a HashiCorp Vault token", Keywords: []string{"hvs.", "hvb.", "hvr."},
		Pattern: re(`\b(hv[sbr]\.[A-Za-z0-9_-]{24,})`), Group: 1, MinEntropy: 3.5, Severity: detect.High},
	{ID: "npm-token", Description: "an npm access token", Keywords: []string{"npm_"},
		Pattern: re(`\b(npm_[A-Za-z0-9]{36})\b`), Group: 1, MinEntropy: 3.5, Severity: detect.High},
	{ID: "pypi-token", Description: "a PyPI upload token", Keywords: []string{"pypi-ageichlwas5vcmc"},
		Pattern: re(`(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})`), Group: 1, Severity: detect.High},
	{ID: "sendgrid-key", Description: "a SendGrid API key", Keywords: []string{"sg."},
		Pattern: re(`\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})\b`), Group: 1, Severity: detect.High},
	{ID: "docker-pat", Description: "a Docker Hub token", Keywords: []string{"dckr_pat_", "dckr_oat_"},
		Pattern: re(`\b(dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,})`), Group: 1, Severity: detect.High},
	{ID: "digitalocean-token", Description: "a DigitalOcean token", Keywords: []string{"dop_v1_", "doo_v1_", "dor_v1_"},
		Pattern: re(`\b(do[opr]_v1_[a-f0-9]{64})\b`), Group: 1, Severity: detect.High},
	{ID: "shopify-token", Description: "a Shopify token", Keywords: []string{"shpat_", "shpca_", "shppa_", "shpss_"},
		Pattern: re(`\b(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})\b`), Group: 1, Severity: detect.High},
	{ID: "databricks-token", Description: "a Databricks token", Keywords: []string{"dapi"},
		Pattern: re(`\b(dapi[a-f0-9]{32}(?:-\d)?)\b`), Group: 1, MinEntropy: 3, Severity: detect.High},
	{ID: "sentry-token", Description: "a Sentry token", Keywords: []string{"sntrys_", "sntryu_"},
		Pattern: re(`\b(sntrys_eyJ[A-Za-z0-9+/=_-]{60,}|sntryu_[a-f0-9]{64})`), Group: 1, Severity: detect.High},
	{ID: "facebook-token", Description: "a Facebook access token", Keywords: []string{"eaam", "eaac"},
		Pattern: re(`\b(EAA[MC][A-Za-z0-9]{100,})`), Group: 1, MinEntropy: 3.5, Severity: detect.High},
	{ID: "notion-token", Description: "a Notion token", Keywords: []string{"ntn_", "secret_"},
		Pattern: re(`\b(ntn_[0-9]{11}[A-Za-z0-9]{32}[A-Za-z0-9]{3}|secret_[A-Za-z0-9]{43})\b`), Group: 1, MinEntropy: 3.5, Severity: detect.High},
	{ID: "atlassian-token", Description: "an Atlassian API token", Keywords: []string{"atatt3"}, Post: 1000,
		Pattern: re(`\b(ATATT3[A-Za-z0-9_=-]{150,})`), Group: 1, Severity: detect.High},
	{ID: "sonar-token", Description: "a SonarQube token", Keywords: []string{"squ_", "sqp_", "sqa_"},
		Pattern: re(`\b(sq[upa]_[a-f0-9]{40})\b`), Group: 1, Severity: detect.High},
	{ID: "sourcegraph-token", Description: "a Sourcegraph token", Keywords: []string{"sgp_", "slk_"},
		Pattern: re(`\b(sgp_(?:[a-fA-F0-9]{16}|local)_[a-fA-F0-9]{40}|sgp_[a-fA-F0-9]{40}|slk_[a-fA-F0-9]{64})\b`), Group: 1, MinEntropy: 3, Severity: detect.High},
	{ID: "age-secret-key", Description: "an age secret key", Keywords: []string{"age-secret-key-1"},
		Pattern: re(`(AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})`), Group: 1, Severity: detect.Critical},
	{ID: "cloudflare-origin-ca-key", Description: "a Cloudflare Origin CA key", Keywords: []string{"v1.0-"},
		Pattern: re(`\b(v1\.0-[a-f0-9]{24}-[a-f0-9]{146})\b`), Group: 1, Severity: detect.High},
	{ID: "perplexity-api-key", Description: "a Perplexity API key", Keywords: []string{"pplx-"},
		Pattern: re(`\b(pplx-[A-Za-z0-9]{48})\b`), Group: 1, MinEntropy: 3.5, Severity: detect.High},
	{ID: "twilio-key", Description: "a Twilio API key", Keywords: []string{"twilio"},
		Anchored: true, Pattern: re(`^(?i:twilio)[\s\S]{0,40}?\b(SK[0-9a-fA-F]{32})\b`), Group: 1, MinEntropy: 3, Severity: detect.High},
	{ID: "mailgun-key", Description: "a Mailgun API key", Keywords: []string{"key-"},
		Pattern: re(`\b(key-[0-9a-f]{32})\b`), Group: 1, MinEntropy: 3.2, Severity: detect.High},
	{ID: "clickhouse-cloud-key", Description: "a ClickHouse Cloud secret key", Keywords: []string{"4b1d"},
		Pattern: re(`\b(4b1d[A-Za-z0-9]{38})\b`), Group: 1, MinEntropy: 3.5, Severity: detect.High},
	{ID: "maxmind-license-key", Description: "a MaxMind license key", Keywords: []string{"_mmk"}, Pre: 40,
		Pattern: re(`\b([A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk)\b`), Group: 1, Severity: detect.High},
	{ID: "intra42-secret", Description: "a 42 Intra client secret", Keywords: []string{"s-s4t2"},
		Pattern: re(`\b(s-s4t2(?:ud|af)-[a-f0-9]{64})\b`), Group: 1, Severity: detect.High},
	{ID: "facebook-app-token", Description: "a Facebook app access token", Keywords: []string{"facebook"},
		Anchored: true, Pattern: re(`^(?i:facebook)[\s\S]{0,40}?\b(\d{15,16}(?:\||%7C)[A-Za-z0-9_-]{27,40})`), Group: 1, MinEntropy: 3, Severity: detect.High},
	{ID: "gcp-service-account", Description: "a Google Cloud service-account key file", Keywords: []string{"service_account"}, Pre: 24,
		Pattern: re(`"type"\s*:\s*"(service_account)"`), Group: 1, Severity: detect.Medium},
	{ID: "clojars-token", Description: "a Clojars deploy token", Keywords: []string{"clojars_"},
		Pattern: re(`\b(CLOJARS_[a-z0-9]{60})\b`), Group: 1, Severity: detect.High},
	{ID: "sourcegraph-key", Description: "a Sourcegraph access token", Keywords: []string{"sourcegraph"},
		Anchored: true, Pattern: re(`^(?i:sourcegraph)[\w.-]{0,20}['"]?\s*[:=]\s*['"]?\b([a-fA-F0-9]{40})\b`), Group: 1, MinEntropy: 3, Severity: detect.High},
	{ID: "jwt", Description: "a JSON Web Token", Keywords: []string{"eyj"},
		Pattern: re(`\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})`), Group: 1, Weak: true, Severity: detect.Medium},
	{ID: "url-credentials", Description: "a password in a URL", Keywords: []string{"://"},
		Anchored: true, Near: "@", NearWithin: 200, Post: 200, Pattern: re(`^://[^\s/:@'"<>]{1,64}:([^\s/@'"<>]{3,128})@[A-Za-z0-9.\[\]-]+`), Group: 1, Weak: true, Severity: detect.High, Check: urlCredOK},
	{ID: "curl-user", Description: "a password on a curl command line", Keywords: []string{"-u ", "--user ", "-u\t", "--user="},
		Anchored: true, Near: ":", NearWithin: 200, Post: 200, Pattern: re(`^(?:-u|--user)[\s=]+(['"]?[^\s'"]*['"]?:['"]?[^\s'"]*['"]?)(?:\s|$)`), Group: 1, Weak: true, Severity: detect.High, Check: curlUserOK},
	{ID: "auth-header", Description: "a credential in an HTTP header", Keywords: []string{"authorization", "api-token", "apikey", "api-key", "x-auth-token", "token:", "private-token"},
		Anchored: true, Near: ":", NearWithin: 20, Post: 240, Pattern: re(`(?i)^(?:authorization|api-key|apikey|api-token|x-auth-token|private-token|token)\s*:\s*(?:bearer|basic|token|api-token|apikey|sso-key|dsn)?\s*([A-Za-z0-9_~+/.=@!%-]{8,})`), Group: 1, MinEntropy: 2.5, Weak: true, Severity: detect.High, Check: headerOK},
	{ID: "generic-secret", Description: "a secret assigned to a name that says so", Keywords: []string{"key", "token", "secret", "pwd", "credential", "pass"},
		Anchored: true, Gate: assignment, Post: 200, Pattern: re(`(?i)^(?:key|token|secret|pwd|credential|pass)[\w.-]{0,20}['"\x60]?\s*(?:=|:|=>|:=|\?=|\|\|)\s*['"\x60]?([A-Za-z0-9_/+=~.!@#$%^&*-]{10,150})`), Group: 1, MinEntropy: 3.5, Weak: true, Severity: detect.Medium, Check: genericOK},
}
