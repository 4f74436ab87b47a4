import { GatewayClient, resolveGateway, type GatewayOptions } from '../client/gateway-client.js';

/**
 * The client for a command's gateway options (`--gateway`, else the environment, else
 * `fallback`, a stack file's `provider.gateway`; client/gateway-client.ts resolveGateway).
 */
export function openGateway(options: GatewayOptions, fallback?: string): GatewayClient {
  return new GatewayClient(resolveGateway(options, process.env, fallback));
}
