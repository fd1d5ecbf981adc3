/**
 * /redfish/v1/$metadata: the CSDL document naming the DMTF schemas (and versions) we emit; and
 * /redfish/v1/openapi.yaml: the OpenAPI document of the operations this service serves (generated
 * from hack/redfish/spec/openapi.yaml; its $refs name DMTF's published schema files). Both public,
 * as DSP0266 has the service's own description readable before login.
 */
import { openApiDocument } from '../../../generated/redfish/openapi-document.js';
import { metadataReferences, serviceContainer } from '../../../generated/redfish/routes.js';
import type { OperationHandlers } from '../core/types.js';

const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

export function metadataDocument(): string {
  const refs = metadataReferences
    .map(
      (r) =>
        `  <edmx:Reference Uri="${escapeXml(r.uri)}">\n` +
        r.namespaces.map((ns) => `    <edmx:Include Namespace="${escapeXml(ns)}"/>\n`).join('') +
        '  </edmx:Reference>\n',
    )
    .join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n' +
    refs +
    '  <edmx:DataServices>\n' +
    '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n' +
    `      <EntityContainer Name="Service" Extends="${escapeXml(serviceContainer)}"/>\n` +
    '    </Schema>\n' +
    '  </edmx:DataServices>\n' +
    '</edmx:Edmx>\n'
  );
}

const DOCUMENT = metadataDocument();

export const handlers: OperationHandlers = {
  getMetadata: async (ctx) => {
    ctx.status = 200;
    ctx.type = 'application/xml; charset=utf-8';
    ctx.body = DOCUMENT;
  },

  getOpenApiDocument: async (ctx) => {
    ctx.status = 200;
    ctx.type = 'application/yaml; charset=utf-8';
    ctx.body = openApiDocument;
  },
};
