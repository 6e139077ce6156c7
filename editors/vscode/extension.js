// The policydsl client: starts `policy lsp` (stdio) for .policy files.
// Plain JavaScript, so the extension needs no build step; the TextMate
// grammar in syntaxes/ keeps colouring the text before and without the server.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function settings() {
  const config = vscode.workspace.getConfiguration("policydsl");
  return {
    command: config.get("server.command", "policy"),
    args: config.get("server.args", ["lsp"]),
    explain: {
      accounts: config.get("explain.accounts", "accounts.csv"),
      history: config.get("explain.history", "contacts.csv"),
    },
  };
}

async function start(context) {
  const { command, args, explain } = settings();
  const server = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient(
    "policydsl",
    "policydsl language server",
    { run: server, debug: server },
    {
      documentSelector: [{ scheme: "file", language: "policy" }],
      initializationOptions: { explain },
      synchronize: { configurationSection: "policydsl" },
    },
  );
  await client.start();
}

async function activate(context) {
  // The Explain lens's command: the full explanation of one account in a terminal.
  context.subscriptions.push(
    vscode.commands.registerCommand("policydsl.explain", (uri, accountId) => {
      const { command, explain } = settings();
      const policy = vscode.Uri.parse(uri).fsPath;
      const folder = require("path").dirname(policy);
      const terminal = vscode.window.createTerminal({ name: "policy explain", cwd: folder });
      const quote = (text) => `'${String(text).replace(/'/g, "'\\''")}'`;
      const history = explain.history ? ` --history ${quote(explain.history)}` : "";
      terminal.sendText(`${command} explain ${quote(policy)} ${quote(explain.accounts)} --id ${quote(accountId)}${history}`);
      terminal.show();
    }),
    vscode.commands.registerCommand("policydsl.restartServer", async () => {
      if (client) await client.stop();
      await start(context);
    }),
  );
  try {
    await start(context);
  } catch (error) {
    vscode.window.showErrorMessage(
      `policydsl: could not start \`${settings().command} lsp\` (${error.message}). ` +
        "Install it with `pip install 'policydsl[lsp]'` or set policydsl.server.command.",
    );
  }
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
